"""Counts, on one interface, the IPv4/IPv6 TCP and UDP packets sent to the escape probes' ports.

Run on the *peer's* side of a link (the ISP's end of up1), so what it reports is what left the host,
not what the program believes it sent. Prints 'ready' once the capture is open, then one line
'PORT' per captured packet whose destination port is in [40000, 41000). Stops at end of stdin.
"""
import socket, struct, sys, threading, os

iface = sys.argv[1]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL
s.bind((iface, 0))
print('ready', flush=True)
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
while True:
    frame, addr = s.recvfrom(65535)
    if addr[2] == socket.PACKET_OUTGOING:
        continue
    ethertype = struct.unpack('!H', frame[12:14])[0]
    p = frame[14:]
    if ethertype == 0x0800 and len(p) >= 20:
        proto, off = p[9], (p[0] & 0x0f) * 4
    elif ethertype == 0x86dd and len(p) >= 40:
        proto, off = p[6], 40
    else:
        continue
    if proto not in (6, 17) or len(p) < off + 4:
        continue
    port = struct.unpack('!H', p[off + 2:off + 4])[0]
    if 40000 <= port < 41000:
        print(port, flush=True)
