#!/usr/bin/env bash
# The haports lab: the packet pump in front of three stateful firewalls, built the way a
# network engineer would build it, in network namespaces on one machine.
#
#   examples/lab/lab.sh up        build the lab and start the pump (root)
#   examples/lab/lab.sh status    what is running, the appliances' health, conntrack, counters
#   examples/lab/lab.sh traffic   a short demonstration: ping, curl, iperf3, UDP echo
#   examples/lab/lab.sh fail NVA  stop NVA's health endpoint (nva0, nva1, nva2): the pump's
#                                 probe marks it down, new connections avoid it
#   examples/lab/lab.sh heal NVA  start it again
#   examples/lab/lab.sh reload    send the pump SIGHUP (after editing $LAB_DIR/pump.json)
#   examples/lab/lab.sh env       the lab's names and addresses as KEY=VALUE lines (for scripts)
#   examples/lab/lab.sh down      stop everything the lab started and delete its namespaces
#
# Topology (examples/lab/README.md has the full story):
#
#     client 192.168.10.2             server 192.168.20.2          inner networks
#       fd00:10::2                      fd00:20::2                 (in VXLAN VNI 100)
#       [vx100 VTEP]                    [vx100 VTEP]
#         10.213.0.2                      10.213.0.3
#             |                               |
#     ========+=========== underlay 10.213.0.0/24 (a bridge) ========+============
#             |               |               |               |
#      pump 10.213.0.1   nva0 10.213.0.10  nva1 10.213.0.11  nva2 10.213.0.12
#      haports pump      [vx100] iptables  [vx100] iptables  [vx100] iptables
#
#   client -> pump -> nvaN -> server, and server -> pump -> the same nvaN -> client:
#   - the client's and the server's VTEPs send every frame to the pump (their vx100
#     devices have `remote 10.213.0.1`): the pump is their next hop;
#   - the pump balances the inner packets over the appliances by the symmetric 5-tuple
#     hash and relays each VXLAN datagram unchanged (VNI 100, same inner frame; only an
#     inner TCP/UDP checksum that the sender's offload left partial is completed) to
#     the chosen appliance;
#   - the appliance decapsulates it on its vx100, its firewall (conntrack) checks it, it
#     routes it (in and out of vx100) and sends it in VNI 100 straight to the VTEP of the
#     destination (static FDB entries), not back to the pump, which would balance it again;
#   - the reply comes back to the pump from the other VTEP and meets the same appliance.
#
#   Inner MAC addresses: every appliance's vx100 has the SAME address, $NVA_MAC, and the
#   same gateway addresses (192.168.10.1, 192.168.20.1, fd00:10::1, fd00:20::1): the
#   client and the server send to "the gateway" without knowing which appliance will get
#   the frame, and the pump does not rewrite frames. No ARP or neighbour discovery
#   crosses the tunnel (the pump balances IP only): every neighbour entry is static.
#
# Everything the lab makes has the prefix $LAB_PREFIX (namespaces $LAB_PREFIX-client,
# -server, -pump, -nva0, -nva1, -nva2 and -sw, the underlay switch) and its files are in
# $LAB_DIR. Environment:
#   LAB_PREFIX           namespace prefix (hpl)
#   LAB_DIR              state: configuration, logs, pid files (/run/haports-lab/$LAB_PREFIX)
#   LAB_PUMP             haports: run the pump (default) | kernel: no pump, the pump
#                        namespace DNATs the tunnel to nva0 (a baseline) | none: start
#                        nothing in the pump namespace (run the pump yourself)
#   LAB_INNER_CHECKSUMS  the pump's "innerChecksums": complete (default) | count | off |
#                        omit (leave the field out)
#   LAB_NODE             the node binary (node)
#   LAB_HAPORTS          the haports command's entry point (this repository's bin/haports.mjs)
#   LAB_WIRE             mtu: the underlay switch hands on frames of at most the MTU, as a
#                        wire does (default) | gso: it passes the senders' GSO super-frames
#                        through, as veth does by default (see README "One kernel is not a wire")
#
# It installs nothing: `up` checks for what it needs (iproute2, iptables, conntrack,
# iperf3, curl, iputils-ping, ethtool, python3, node and a build of haports) and says
# what is missing. It changes no host's offloads (checksum offload stays on everywhere);
# only the switch's ports stop taking tunnel GSO frames (LAB_WIRE=mtu, below).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

LAB_PREFIX=${LAB_PREFIX:-hpl}
LAB_DIR=${LAB_DIR:-/run/haports-lab/$LAB_PREFIX}
LAB_PUMP=${LAB_PUMP:-haports}
LAB_INNER_CHECKSUMS=${LAB_INNER_CHECKSUMS:-complete}
LAB_NODE=${LAB_NODE:-node}
LAB_HAPORTS=${LAB_HAPORTS:-$ROOT/bin/haports.mjs}
LAB_WIRE=${LAB_WIRE:-mtu}

# ---- The plan: names, addresses, the tunnel ----------------------------------------

NVAS=(nva0 nva1 nva2)
ROLES=(sw client server pump "${NVAS[@]}")
ns() { echo "$LAB_PREFIX-$1"; }        # the namespace of a role

UNDERLAY=10.213.0.0/24                 # the network that carries the tunnels
PUMP_IP=10.213.0.1                     # the pump's listener, and the frontend's address
CLIENT_VTEP=10.213.0.2
SERVER_VTEP=10.213.0.3
declare -A NVA_IP=([nva0]=10.213.0.10 [nva1]=10.213.0.11 [nva2]=10.213.0.12)
declare -A UNDER_IP=([pump]=$PUMP_IP [client]=$CLIENT_VTEP [server]=$SERVER_VTEP
                     [nva0]=${NVA_IP[nva0]} [nva1]=${NVA_IP[nva1]} [nva2]=${NVA_IP[nva2]})

VNI=100                                # one VNI, both directions, all the way through
VXLAN_PORT=4789
VXDEV=vx100                            # the VXLAN device in client, server and appliances
VXMTU=1450                             # 1500 on the underlay - 50 (IPv4 20, UDP 8, VXLAN 8, Ethernet 14)

CLIENT_NET4=192.168.10.0/24; CLIENT4=192.168.10.2; GW4_CLIENT=192.168.10.1
SERVER_NET4=192.168.20.0/24; SERVER4=192.168.20.2; GW4_SERVER=192.168.20.1
CLIENT_NET6=fd00:10::/64;    CLIENT6=fd00:10::2;   GW6_CLIENT=fd00:10::1
SERVER_NET6=fd00:20::/64;    SERVER6=fd00:20::2;   GW6_SERVER=fd00:20::1

NVA_MAC=02:00:00:00:00:fe              # shared by the vx100 of all three appliances
CLIENT_MAC=02:00:00:00:10:02
SERVER_MAC=02:00:00:00:20:02

HEALTH_PORT=8080                       # each appliance's health endpoint (the pump's probe)
HEALTH_PATH=/healthz
PROBE_INTERVAL=1
PROBE_THRESHOLD=2
METRICS=127.0.0.1:9464                 # the pump's metrics, inside the pump namespace
HTTP_PORT=80                           # services of the server: http.server, iperf3, echo
IPERF_PORT=5201
ECHO_PORT=7

# python3 as a path: a shim (pyenv) would not keep its pid when it runs python.
PYTHON=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || echo python3)

say() { printf '%s\n' "$*"; }
is_nva() { case " ${NVAS[*]} " in *" $1 "*) [ -n "$1" ] ;; *) return 1 ;; esac; }
die() { printf 'lab.sh: %s\n' "$*" >&2; exit 1; }
nsx() { local role=$1; shift; ip netns exec "$(ns "$role")" "$@"; }   # run in a role's namespace
ns_exists() { [ -e "/run/netns/$(ns "$1")" ]; }   # `ip netns add` makes /run/netns/NAME
lab_exists() { ns_exists sw || ns_exists pump; }

# ---- What the lab needs --------------------------------------------------------------

check_requirements() {
  local missing=()
  [ "$(id -u)" = 0 ] || missing+=("root (network namespaces need it): run with sudo")
  local -A pkg=([ip]=iproute2 [bridge]=iproute2 [iptables]=iptables [ip6tables]=iptables
                [iptables-save]=iptables [iptables-restore]=iptables [conntrack]=conntrack
                [iperf3]=iperf3 [curl]=curl [ping]=iputils-ping [sysctl]=procps
                [setsid]=util-linux [ethtool]=ethtool [python3]=python3 [$LAB_NODE]="Node.js >= 20")
  local cmd
  for cmd in ip bridge iptables ip6tables iptables-save iptables-restore conntrack iperf3 curl ping sysctl setsid ethtool python3 "$LAB_NODE"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd (apt-get install ${pkg[$cmd]})")
  done
  if [ "$LAB_PUMP" = haports ] && [ ! -f "$(dirname "$LAB_HAPORTS")/../build/host/cli.mjs" ]; then
    missing+=("a build of haports: $(cd "$(dirname "$LAB_HAPORTS")/.." && pwd)/build/host/cli.mjs (npm install && npm run build there)")
  fi
  case $LAB_PUMP in haports|kernel|none) ;; *) missing+=("LAB_PUMP=$LAB_PUMP: must be haports, kernel or none") ;; esac
  case $LAB_WIRE in mtu|gso) ;; *) missing+=("LAB_WIRE=$LAB_WIRE: must be mtu or gso") ;; esac
  case $LAB_INNER_CHECKSUMS in complete|count|off|omit) ;; *) missing+=("LAB_INNER_CHECKSUMS=$LAB_INNER_CHECKSUMS: must be complete, count, off or omit") ;; esac
  if [ ${#missing[@]} -gt 0 ]; then
    say "lab.sh: cannot build the lab; missing:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
  fi
}

# ---- Background processes: one log and one pid file each, in $LAB_DIR -----------------

# spawn NAME ROLE CMD...: runs CMD in ROLE's namespace, detached from this shell.
spawn() {
  local name=$1 role=$2; shift 2
  setsid ip netns exec "$(ns "$role")" "$@" </dev/null >"$LAB_DIR/$name.log" 2>&1 &
  echo $! >"$LAB_DIR/$name.pid"
}

# running PID: the process exists and is not a zombie (the lab's processes are detached:
# whoever adopts them may reap them late).
running() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]; }

# alive NAME: the process of NAME's pid file is running, in one of this lab's namespaces.
alive() {
  local f=$LAB_DIR/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  running "$pid" || return 1
  case "$(ip netns identify "$pid" 2>/dev/null)" in "$LAB_PREFIX"-*) return 0 ;; *) return 1 ;; esac
}

# stop NAME [SIGNAL]: ends NAME's process (by its pid, and only if it is still ours).
stop() {
  local name=$1 sig=${2:-TERM} pid
  if alive "$name"; then
    pid=$(cat "$LAB_DIR/$name.pid")
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 100); do running "$pid" || break; sleep 0.05; done
    if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$LAB_DIR/$name.pid"
}

# wait_port ROLE ADDR PORT: waits (5 s) until a TCP listener answers.
wait_port() {
  for _ in $(seq 50); do
    nsx "$1" "$PYTHON" -c "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 0.5).close()" "$2" "$3" 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on $2:$3 in $(ns "$1") (see $LAB_DIR/*.log)"
}

# ---- The underlay: one bridge, one veth per namespace ----------------------------------
#
# One kernel is not a wire: a TCP sender hands its VXLAN device 64 KB segments (TSO/GSO)
# and veth passes them on whole, so without more a receiver in another namespace gets ONE
# UDP datagram carrying a 3-64 KB TCP segment, which no NIC would ever put on a wire. The
# pump would relay it as one (IP-fragmented) datagram, and the appliance could not route
# its inner packet out of a 1450-byte vx100 (ICMP "fragmentation needed"): TCP crawls.
# So the switch's ports do not take tunnel GSO frames (tx-udp_tnl-segmentation off): the
# kernel segments them on the way out of the switch, the way a NIC's TSO does on the way
# onto a wire. This is the switch's setting only: every host keeps its offloads, checksum
# offload included, and inner TCP/UDP checksums still reach the pump partial, as they do
# from any sender in the same kernel. LAB_WIRE=gso leaves the switch alone.

build_underlay() {
  local role
  for role in "${ROLES[@]}"; do ip netns add "$(ns "$role")"; done
  nsx sw ip link add br0 type bridge
  nsx sw ip link set br0 up
  for role in client server pump "${NVAS[@]}"; do
    nsx sw ip link add "v-$role" type veth peer name eth0 netns "$(ns "$role")"
    nsx sw ip link set "v-$role" master br0 up
    if [ "$LAB_WIRE" = mtu ]; then
      nsx sw ethtool -K "v-$role" tx-udp_tnl-segmentation off tx-udp_tnl-csum-segmentation off
    fi
    nsx "$role" ip addr add "${UNDER_IP[$role]}/24" dev eth0
    nsx "$role" ip link set eth0 up
    nsx "$role" ip link set lo up
  done
}

# ---- The client's and the server's VTEPs ----------------------------------------------
#
# vtep ROLE MAC VTEP_IP ADDR4 GW4 ADDR6 GW6: a kernel VXLAN device, VNI 100, whose
# default forwarding entry (`remote`) is the pump, so every frame goes to the pump; the
# gateway (an appliance, whichever gets the frame) is a static neighbour with the shared
# appliance MAC; the default routes point at it. `nolearning`: frames come back from the
# appliances' addresses, which must not replace the pump as the way out.
# `mtu 1450` and `dev eth0`: without a lower device the kernel cannot work out the
# underlay's MTU and leaves the device at 1500; full-size packets then leave as two IP
# fragments, the pump relays them as one oversized datagram, and the appliance (1450)
# answers "fragmentation needed" until path MTU discovery catches up.
# `addrgenmode none` and `nodad`: no link-local address, so no router solicitation, DAD
# or MLD report goes into the tunnel (the pump would balance them as IPv6 packets).
vtep() {
  local role=$1 mac=$2 vtep_ip=$3 addr4=$4 gw4=$5 addr6=$6 gw6=$7
  nsx "$role" ip link add "$VXDEV" mtu "$VXMTU" address "$mac" type vxlan id "$VNI" dstport "$VXLAN_PORT" \
    dev eth0 local "$vtep_ip" remote "$PUMP_IP" nolearning
  nsx "$role" ip link set "$VXDEV" addrgenmode none
  nsx "$role" ip addr add "$addr4/24" dev "$VXDEV"
  nsx "$role" ip -6 addr add "$addr6/64" dev "$VXDEV" nodad
  nsx "$role" ip link set "$VXDEV" up
  nsx "$role" ip neigh add "$gw4" lladdr "$NVA_MAC" dev "$VXDEV" nud permanent
  nsx "$role" ip -6 neigh add "$gw6" lladdr "$NVA_MAC" dev "$VXDEV" nud permanent
  nsx "$role" ip route add default via "$gw4" dev "$VXDEV"
  nsx "$role" ip -6 route add default via "$gw6" dev "$VXDEV"
  nsx "$role" sysctl -qw net.ipv6.conf.all.accept_redirects=0 net.ipv4.conf.all.accept_redirects=0
}

# ---- An appliance: VXLAN device, router, stateful firewall, health endpoint --------------

# The firewall: conntrack on everything it forwards. INVALID is dropped and counted first
# (with nf_conntrack_tcp_loose=0 a TCP packet of no known connection that is not a SYN is
# INVALID, and so is a packet whose checksum is wrong); then what belongs to a known
# connection; then new connections from the client's side only; everything else is
# dropped and counted as "denied" (a reply that reached the wrong appliance would be).
# The comments name the counters that `status` and the test read (iptables-save -c).
firewall_rules() {  # firewall_rules 4|6
  local fam=$1 cnet snet icmp
  if [ "$fam" = 4 ]; then cnet=$CLIENT_NET4; snet=$SERVER_NET4; icmp="-p icmp"; else cnet=$CLIENT_NET6; snet=$SERVER_NET6; icmp="-p ipv6-icmp"; fi
  cat <<EOF
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
$([ "$fam" = 4 ] && echo "-A INPUT -s $UNDERLAY -p udp --dport $VXLAN_PORT -m comment --comment lab-vxlan-in -j ACCEPT")
$([ "$fam" = 4 ] && echo "-A INPUT -s $PUMP_IP -p tcp --dport $HEALTH_PORT -m comment --comment lab-probe -j ACCEPT")
-A INPUT $icmp -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -m comment --comment lab-invalid -j DROP
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment lab-established -j ACCEPT
-A FORWARD -s $cnet -d $snet -m conntrack --ctstate NEW -m comment --comment lab-new-from-client -j ACCEPT
-A FORWARD -m comment --comment lab-denied -j DROP
COMMIT
EOF
}

# nva NAME: the appliance NAME. Its vx100 has the shared MAC and the gateway addresses of
# both inner networks; static FDB entries send frames for the client's MAC to the client's
# VTEP and for the server's MAC to the server's VTEP (nothing goes back to the pump); static
# neighbour entries for the client and the server. IP forwarding on, ICMP redirects off
# (it routes out of the interface a packet came in on; with no link-local address on vx100
# the kernel sends no IPv6 redirect either).
nva() {
  local n=$1 ip=${NVA_IP[$1]}
  nsx "$n" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0
  nsx "$n" ip link add "$VXDEV" mtu "$VXMTU" address "$NVA_MAC" type vxlan id "$VNI" dstport "$VXLAN_PORT" \
    dev eth0 local "$ip" nolearning
  nsx "$n" ip link set "$VXDEV" addrgenmode none
  nsx "$n" ip addr add "$GW4_CLIENT/24" dev "$VXDEV"
  nsx "$n" ip addr add "$GW4_SERVER/24" dev "$VXDEV"
  nsx "$n" ip -6 addr add "$GW6_CLIENT/64" dev "$VXDEV" nodad
  nsx "$n" ip -6 addr add "$GW6_SERVER/64" dev "$VXDEV" nodad
  nsx "$n" ip link set "$VXDEV" up
  nsx "$n" bridge fdb add "$CLIENT_MAC" dev "$VXDEV" dst "$CLIENT_VTEP" self permanent
  nsx "$n" bridge fdb add "$SERVER_MAC" dev "$VXDEV" dst "$SERVER_VTEP" self permanent
  nsx "$n" ip neigh add "$CLIENT4" lladdr "$CLIENT_MAC" dev "$VXDEV" nud permanent
  nsx "$n" ip neigh add "$SERVER4" lladdr "$SERVER_MAC" dev "$VXDEV" nud permanent
  nsx "$n" ip -6 neigh add "$CLIENT6" lladdr "$CLIENT_MAC" dev "$VXDEV" nud permanent
  nsx "$n" ip -6 neigh add "$SERVER6" lladdr "$SERVER_MAC" dev "$VXDEV" nud permanent
  firewall_rules 4 | nsx "$n" iptables-restore
  firewall_rules 6 | nsx "$n" ip6tables-restore
  # conntrack's sysctls exist in the namespace once its rules use conntrack.
  nsx "$n" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
  mkdir -p "$LAB_DIR/$n"
  echo ok >"$LAB_DIR/$n/${HEALTH_PATH#/}"
  heal_nva "$n"
}

# The health endpoint: an HTTP server on the appliance's underlay address; the pump's
# probe is `GET /healthz` every second, two failures in a row mark the appliance down.
heal_nva() {
  local n=$1
  alive "$n-health" && return 0
  spawn "$n-health" "$n" "$PYTHON" -m http.server "$HEALTH_PORT" --bind "${NVA_IP[$n]}" --directory "$LAB_DIR/$n"
  wait_port "$n" "${NVA_IP[$n]}" "$HEALTH_PORT"
}

# ---- The server's services --------------------------------------------------------------

ECHO_PY='
import socket, threading
def conn(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)
def tcp():
    s = socket.create_server(("::", PORT), family=socket.AF_INET6, dualstack_ipv6=True, backlog=256)
    while True:
        c, _ = s.accept()
        threading.Thread(target=conn, args=(c,), daemon=True).start()
def udp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", PORT))
    while True:
        d, a = s.recvfrom(65535)
        s.sendto(d, a)
threading.Thread(target=udp, daemon=True).start()
tcp()
'

server_services() {
  mkdir -p "$LAB_DIR/www"
  echo "hello from the server behind the haports lab" >"$LAB_DIR/www/index.html"
  head -c 1048576 /dev/urandom >"$LAB_DIR/www/1M.bin"
  spawn http server "$PYTHON" -m http.server "$HTTP_PORT" --bind :: --directory "$LAB_DIR/www"
  spawn iperf3 server iperf3 -s -p "$IPERF_PORT"
  spawn echo server "$PYTHON" -c "PORT = $ECHO_PORT${ECHO_PY}"
  wait_port server "$SERVER4" "$HTTP_PORT"
  wait_port server "$SERVER4" "$IPERF_PORT"
  wait_port server "$SERVER4" "$ECHO_PORT"
}

# ---- The pump ------------------------------------------------------------------------------
#
# pump_config HASHKEY: the pump's configuration, in one place. One frontend (next-hop use:
# the listener stands for it), one floating-IP HA-ports rule over the three appliances,
# probed over HTTP every second with threshold 2, and one VXLAN listener for VNI 100 that
# accepts tunnels from the client's and the server's VTEPs only ("peers").
pump_config() {
  local key=$1 backends="" n sep="" checksums=""
  for n in "${NVAS[@]}"; do
    backends+="$sep{ \"name\": \"$n\", \"address\": \"${NVA_IP[$n]}\" }"
    sep=$',\n        '
  done
  [ "$LAB_INNER_CHECKSUMS" = omit ] || checksums=$',\n    "innerChecksums": "'"$LAB_INNER_CHECKSUMS"'"'
  cat <<EOF
{
  "hashKey": "$key",
  "flowTable": { "capacity": 65536 },
  "frontends": [ { "name": "fe-lab", "address": "$PUMP_IP" } ],
  "backendPools": [
    { "name": "nvas", "backends": [
        $backends ] }
  ],
  "probes": [
    { "name": "nva-health", "protocol": "http", "port": $HEALTH_PORT, "path": "$HEALTH_PATH",
      "intervalSeconds": $PROBE_INTERVAL, "threshold": $PROBE_THRESHOLD }
  ],
  "rules": [
    { "name": "ha-ports", "frontend": "fe-lab", "backendPool": "nvas",
      "protocol": "all", "frontendPort": 0, "backendPort": 0, "floatingIp": true,
      "probe": "nva-health", "persistOnUnhealthy": "defaultForProtocol" }
  ],
  "pump": {
    "listeners": [
      { "name": "vx$VNI", "protocol": "vxlan", "frontend": "fe-lab", "bind": "$PUMP_IP:$VXLAN_PORT",
        "vnis": [ $VNI ], "peers": [ "$CLIENT_VTEP", "$SERVER_VTEP" ] }
    ]$checksums
  }
}
EOF
}

start_pump() {
  local key
  key=0x$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  pump_config "$key" >"$LAB_DIR/pump.json"
  spawn pump pump "$LAB_NODE" "$LAB_HAPORTS" pump --config "$LAB_DIR/pump.json" --metrics "$METRICS"
  for _ in $(seq 200); do
    grep -q '"msg":"running"' "$LAB_DIR/pump.log" 2>/dev/null && return 0
    alive pump || break
    sleep 0.1
  done
  say "lab.sh: the pump did not start; its log ($LAB_DIR/pump.log) ends with:" >&2
  tail -n 20 "$LAB_DIR/pump.log" >&2 || true
  exit 1
}

# The baseline: no pump; the pump namespace forwards the tunnel to nva0 by DNAT of the outer
# UDP destination (the kernel's fast path, for comparison only: no balancing).
start_kernel_forwarder() {
  nsx pump sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0
  nsx pump iptables -t nat -A PREROUTING -d "$PUMP_IP" -p udp --dport "$VXLAN_PORT" \
    -m comment --comment lab-kernel-baseline -j DNAT --to-destination "${NVA_IP[nva0]}"
}

# ---- Commands ----------------------------------------------------------------------------

cmd_up() {
  check_requirements
  lab_exists && die "a lab with prefix $LAB_PREFIX is already up (run: $0 down)"
  mkdir -p "$LAB_DIR"
  # A failure half-way removes what was built.
  trap 'say "lab.sh: up failed; removing what was built" >&2; cmd_down >/dev/null 2>&1 || true' ERR
  build_underlay
  vtep client "$CLIENT_MAC" "$CLIENT_VTEP" "$CLIENT4" "$GW4_CLIENT" "$CLIENT6" "$GW6_CLIENT"
  vtep server "$SERVER_MAC" "$SERVER_VTEP" "$SERVER4" "$GW4_SERVER" "$SERVER6" "$GW6_SERVER"
  local n
  for n in "${NVAS[@]}"; do nva "$n"; done
  server_services
  case $LAB_PUMP in
    haports) start_pump ;;
    kernel) start_kernel_forwarder ;;
    none) pump_config "0x$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" >"$LAB_DIR/pump.json" ;;
  esac
  trap - ERR
  describe
}

describe() {
  cat <<EOF
haports lab "$LAB_PREFIX" is up ($LAB_DIR)
  underlay    $UNDERLAY on a bridge in $(ns sw) (wire: $LAB_WIRE)
  tunnel      VXLAN VNI $VNI, UDP $VXLAN_PORT, kernel VXLAN devices "$VXDEV" (nolearning, static FDB)
  client      $(ns client): VTEP $CLIENT_VTEP -> pump; inner $CLIENT4/24, $CLIENT6/64, MAC $CLIENT_MAC;
              default routes via $GW4_CLIENT / $GW6_CLIENT (static neighbour $NVA_MAC)
  server      $(ns server): VTEP $SERVER_VTEP -> pump; inner $SERVER4/24, $SERVER6/64, MAC $SERVER_MAC;
              default routes via $GW4_SERVER / $GW6_SERVER; http :$HTTP_PORT, iperf3 :$IPERF_PORT, echo tcp+udp :$ECHO_PORT
EOF
  local n
  for n in "${NVAS[@]}"; do
    say "  $n        $(ns "$n"): ${NVA_IP[$n]}; $VXDEV MAC $NVA_MAC, gateways $GW4_CLIENT $GW4_SERVER $GW6_CLIENT $GW6_SERVER;"
    say "              iptables/ip6tables stateful firewall (INVALID dropped and counted, tcp_loose 0); health http://${NVA_IP[$n]}:$HEALTH_PORT$HEALTH_PATH"
  done
  case $LAB_PUMP in
    haports) say "  pump        $(ns pump): $PUMP_IP:$VXLAN_PORT, haports pump (pid $(cat "$LAB_DIR/pump.pid")), config $LAB_DIR/pump.json,"
             say "              log $LAB_DIR/pump.log, metrics http://$METRICS/metrics (inside the namespace)" ;;
    kernel)  say "  pump        $(ns pump): $PUMP_IP, NO pump: the kernel DNATs UDP $VXLAN_PORT to nva0 (baseline)" ;;
    none)    say "  pump        $(ns pump): $PUMP_IP, nothing started; run:"
             say "              ip netns exec $(ns pump) $LAB_NODE $LAB_HAPORTS pump --config $LAB_DIR/pump.json --metrics $METRICS" ;;
  esac
  cat <<EOF
try:
  ip netns exec $(ns client) ping -c 3 $SERVER4
  ip netns exec $(ns client) curl http://[$SERVER6]/
  ip netns exec $(ns client) iperf3 -c $SERVER4 -t 5
  $0 status      $0 traffic      $0 fail nva1      $0 down
EOF
}

cmd_down() {
  local role name f
  # The pump first, with SIGTERM: it writes its final counters to its log.
  if [ -d "$LAB_DIR" ]; then
    stop pump TERM
    for f in "$LAB_DIR"/*.pid; do
      [ -e "$f" ] || continue
      name=$(basename "$f" .pid)
      stop "$name" TERM
    done
  fi
  # Anything else still running inside the lab's namespaces (started by hand in them).
  local found=0
  for role in "${ROLES[@]}"; do
    ns_exists "$role" || continue
    found=1
    { ip netns pids "$(ns "$role")" 2>/dev/null || true; } | while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done
  done
  for role in "${ROLES[@]}"; do
    if ns_exists "$role"; then
      { ip netns pids "$(ns "$role")" 2>/dev/null || true; } | while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done
      ip netns del "$(ns "$role")" && say "deleted namespace $(ns "$role")"
    fi
  done
  [ "$found" = 1 ] || [ -d "$LAB_DIR" ] || say "no lab with prefix $LAB_PREFIX is up; nothing to remove"
  if [ -d "$LAB_DIR" ]; then
    [ -f "$LAB_DIR/pump.log" ] && say "the pump's log: $LAB_DIR/pump.log (last line: $(tail -c 300 "$LAB_DIR/pump.log" | tail -n 1 | cut -c1-160)...)"
    rm -rf "$LAB_DIR" && say "removed $LAB_DIR"
  fi
  rmdir /run/haports-lab 2>/dev/null || true   # the default parent, once no lab uses it
}

# fw_counters ROLE: the FORWARD chain's counters (packets) of both families, by comment.
fw_counters() {
  local fam out="" c
  for fam in iptables ip6tables; do
    for c in lab-invalid lab-established lab-new-from-client lab-denied; do
      out+=" ${fam%tables}:${c#lab-}=$(nsx "$1" "$fam-save" -c -t filter | sed -n "s/^\[\([0-9]*\):[0-9]*\] .*--comment $c .*/\1/p")"
    done
  done
  echo "$out"
}

metrics() { nsx pump curl -fsS --max-time 3 "http://$METRICS/metrics"; }

cmd_status() {
  local role n flows
  say "lab $LAB_PREFIX ($LAB_DIR)"
  for role in "${ROLES[@]}"; do
    if ns_exists "$role"; then say "  namespace $(ns "$role")"; else say "  namespace $(ns "$role"): MISSING"; fi
  done
  lab_exists || { say "  (the lab is down)"; return 0; }
  for f in "$LAB_DIR"/*.pid; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .pid)
    if alive "$n"; then say "  process $n: pid $(cat "$f"), running"; else say "  process $n: NOT running (log $LAB_DIR/$n.log)"; fi
  done
  if alive pump; then
    say "  pump metrics (http://$METRICS/metrics):"
    metrics 2>/dev/null | grep -E '^haports_(backend_up|backend_draining|backend_flows_total|pump_received_packets_total|pump_sent_packets_total|flow_table_entries)|^haports_drops_total.* [1-9]' | sed 's/^/    /' || say "    (no answer)"
  fi
  for n in "${NVAS[@]}"; do
    flows=$( { nsx "$n" conntrack -L -f ipv4; nsx "$n" conntrack -L -f ipv6; } 2>/dev/null | grep -cE 'src=(192\.168\.(10|20)\.|fd00:(10|20)::)' || true)
    say "  $n: $flows inner connections in conntrack; FORWARD packets$(fw_counters "$n")"
  done
}

cmd_traffic() {
  lab_exists || die "the lab is not up (run: $0 up)"
  local c; c=(ip netns exec "$(ns client)")
  say "== ping IPv4 and IPv6";  "${c[@]}" ping -c 3 -i 0.2 -W 2 "$SERVER4" | tail -n 2; "${c[@]}" ping -c 3 -i 0.2 -W 2 "$SERVER6" | tail -n 2
  say "== curl (HTTP over TCP), IPv4 and IPv6"
  "${c[@]}" curl -sS --max-time 5 -o /dev/null -w '  %{http_code} %{size_download} bytes from %{remote_ip} in %{time_total}s\n' "http://$SERVER4/1M.bin" || true
  "${c[@]}" curl -sS --max-time 5 -o /dev/null -w '  %{http_code} %{size_download} bytes from %{remote_ip} in %{time_total}s\n' "http://[$SERVER6]/1M.bin" || true
  say "== iperf3 TCP, 3 s"; "${c[@]}" iperf3 -c "$SERVER4" -p "$IPERF_PORT" -t 3 --connect-timeout 3000 | grep -E 'sender|receiver' || true
  say "== UDP echo, IPv4 and IPv6"
  "${c[@]}" "$PYTHON" -c '
import socket, sys
for addr, fam in ((sys.argv[1], socket.AF_INET), (sys.argv[2], socket.AF_INET6)):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(1); ok = 0
    for i in range(10):
        s.sendto(b"echo %d" % i, (addr, int(sys.argv[3])))
        try: ok += s.recv(100) == b"echo %d" % i
        except OSError: pass
    print(f"  {addr}: {ok}/10 echoed")' "$SERVER4" "$SERVER6" "$ECHO_PORT" || true
  cmd_status
}

cmd_fail() {
  local n=${1:-}; is_nva "$n" || die "fail: which appliance? (${NVAS[*]})"
  stop "$n-health" TERM
  say "$n: health endpoint stopped; the pump marks it down within ${PROBE_INTERVAL}s x $PROBE_THRESHOLD"
}

cmd_heal() {
  local n=${1:-}; is_nva "$n" || die "heal: which appliance? (${NVAS[*]})"
  check_requirements
  heal_nva "$n"
  say "$n: health endpoint running again (pid $(cat "$LAB_DIR/$n-health.pid"))"
}

cmd_reload() {
  alive pump || die "the pump is not running"
  local pid; pid=$(cat "$LAB_DIR/pump.pid")
  kill -HUP "$pid"
  sleep 1
  if alive pump; then say "sent SIGHUP to the pump (pid $pid); it is running"; else say "sent SIGHUP to the pump (pid $pid); it is NOT running any more (see $LAB_DIR/pump.log)"; return 1; fi
}

cmd_env() {
  local role n
  for role in "${ROLES[@]}"; do echo "NS_${role^^}=$(ns "$role")"; done
  cat <<EOF
LAB_PREFIX=$LAB_PREFIX
LAB_DIR=$LAB_DIR
LAB_PUMP=$LAB_PUMP
NVAS="${NVAS[*]}"
UNDERLAY=$UNDERLAY
PUMP_IP=$PUMP_IP
CLIENT_VTEP=$CLIENT_VTEP
SERVER_VTEP=$SERVER_VTEP
VNI=$VNI
VXLAN_PORT=$VXLAN_PORT
VXDEV=$VXDEV
CLIENT4=$CLIENT4
SERVER4=$SERVER4
CLIENT6=$CLIENT6
SERVER6=$SERVER6
NVA_MAC=$NVA_MAC
CLIENT_MAC=$CLIENT_MAC
SERVER_MAC=$SERVER_MAC
HEALTH_PORT=$HEALTH_PORT
PROBE_INTERVAL=$PROBE_INTERVAL
PROBE_THRESHOLD=$PROBE_THRESHOLD
METRICS=$METRICS
HTTP_PORT=$HTTP_PORT
IPERF_PORT=$IPERF_PORT
ECHO_PORT=$ECHO_PORT
PUMP_CONFIG=$LAB_DIR/pump.json
PUMP_LOG=$LAB_DIR/pump.log
PUMP_PID_FILE=$LAB_DIR/pump.pid
EOF
  for n in "${NVAS[@]}"; do echo "NVA_IP_${n^^}=${NVA_IP[$n]}"; done
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  traffic) cmd_traffic ;;
  fail) cmd_fail "${2:-}" ;;
  heal) cmd_heal "${2:-}" ;;
  reload) cmd_reload ;;
  env) cmd_env ;;
  config) cat "$LAB_DIR/pump.json" ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
