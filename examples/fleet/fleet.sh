#!/usr/bin/env bash
# The haports fleet lab: three pump instances behind a BGP/ECMP router (BIRD 2, BFD),
# three stateful firewalls, a client and a server, in network namespaces (root).
#
#   examples/fleet/fleet.sh up               build the fleet and start everything
#   examples/fleet/fleet.sh status           BGP/BFD sessions, the ECMP route, each instance, each firewall
#   examples/fleet/fleet.sh traffic          ping, curl, iperf3, UDP echo through the fleet, then status
#   examples/fleet/fleet.sh kill pump1       kill -9 pump1's pump (its supervisor withdraws the route)
#   examples/fleet/fleet.sh kill pump1 --whole   the instance dies: port dark, pump and BIRD killed (BFD)
#   examples/fleet/fleet.sh join pump1       start what is missing of pump1 (port, BIRD, pump)
#   examples/fleet/fleet.sh stop pump1       SIGTERM: withdraw, wait withdrawSeconds, stop
#   examples/fleet/fleet.sh reload [pump1]   SIGHUP one instance at a time (a rolling reload)
#   examples/fleet/fleet.sh fail nva1 | heal nva1   stop / start an appliance's health endpoint
#   examples/fleet/fleet.sh env | config     names and addresses; the pumps' configuration
#   examples/fleet/fleet.sh down             stop everything, delete the namespaces
#
# The topology is examples/fleet/topology.json, which test/fleet/test_fleet.py and
# render_svg.py (docs/fleet.svg) read too; fleet.py builds it (docs/fleet.md explains it).
# Environment: FLEET_PREFIX (hpf), FLEET_DIR, FLEET_NODE, FLEET_HAPORTS, FLEET_ANNOUNCE
# (auto | pump | emulate), FLEET_WIRE (mtu | gso); see fleet.py.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec python3 "$HERE/fleet.py" "$@"
