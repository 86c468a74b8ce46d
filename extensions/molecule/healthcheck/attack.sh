#!/bin/sh
# A command check gone bad (issue: privilege split). Once per boot of the unit that runs it, it
# tries to take BIRD and the checker over, logs each outcome (journal tag hc-attack), and exits 0
# so that the prefix it checks stays healthy. verify.yml expects every attempt refused.
[ -e /tmp/hc-attack-done ] && exit 0
touch /tmp/hc-attack-done
me=$(id -un)
attempt() {  # name, then a command that succeeds only if the attack worked
    name=$1; shift
    if "$@" >/dev/null 2>&1; then outcome=SUCCEEDED; else outcome=refused; fi
    logger -t hc-attack "$name $outcome as $me"
}
bird() {  # a BIRD command over its control socket; succeeds if BIRD answered with $1
    want=$1; shift
    birdc -s /run/bird/bird.ctl "$@" 2>&1 | grep -q "$want"
}
attempt write_include sh -c 'echo "define hc_attack = 1;" >> /run/anycast-nva/announce.conf'
attempt configure_own_file bird Reconfigur configure '"/etc/hc-test-evil.conf"'
attempt disable_bgp bird disabled disable route_server_0
attempt checker_control python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect("/run/anycast-healthcheck/control.sock")
s.sendall(b"{\"command\": \"drain\"}\n")
sys.exit(0 if b"\"ok\": true" in s.recv(65536) else 1)'
attempt checker_state sh -c 'echo "{}" > /var/lib/anycast-healthcheck/drain.json'
exit 0
