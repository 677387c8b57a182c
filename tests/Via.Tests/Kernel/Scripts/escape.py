"""One way of aiming a packet at an interface other than the route's, chosen by name.

Usage: escape.py METHOD PORT IFNAME PEER4 PEER6 PEERLL
  IFNAME  the interface to aim at (the default uplink, not the route's)
  PEER4/PEER6  addresses of the host behind IFNAME, on its subnet; PEERLL its IPv6 link-local address
Prints 'sent' when the kernel took the packet, or 'refused ERRNONAME' when a call failed.
Each method sends to PORT, so a capture on the peer's side can tell the methods apart.
"""
import errno, socket, struct, sys

method, port, ifname, peer4, peer6, peerll = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
ifindex = socket.if_nametoindex(ifname)
SO_DONTROUTE, IP_UNICAST_IF, IPV6_UNICAST_IF = 5, 50, 76
payload = b'via-escape-probe'

def udp(family=socket.AF_INET):
    return socket.socket(family, socket.SOCK_DGRAM)

def tcp_connect(sock, address):
    # A TCP probe succeeds for the capture once the SYN is out; wait at most 2 s for an answer.
    sock.settimeout(2)
    try:
        sock.connect(address)
    except socket.timeout:
        pass
    except ConnectionRefusedError:
        pass

def run():
    if method == 'udp-so-dontroute':
        s = udp(); s.setsockopt(socket.SOL_SOCKET, SO_DONTROUTE, 1); s.sendto(payload, (peer4, port))
    elif method == 'udp-msg-dontroute':
        udp().sendto(payload, socket.MSG_DONTROUTE, (peer4, port))
    elif method == 'tcp-so-dontroute':
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, SO_DONTROUTE, 1); tcp_connect(s, (peer4, port))
    elif method == 'udp-pktinfo':
        s = udp()
        s.sendmsg([payload], [(socket.IPPROTO_IP, 8, struct.pack('@i4s4s', ifindex, b'\0' * 4, b'\0' * 4))], 0, (peer4, port))
    elif method == 'udp6-pktinfo':
        s = udp(socket.AF_INET6)
        s.sendmsg([payload], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, b'\0' * 16 + struct.pack('@I', ifindex))], 0, (peer6, port))
    elif method == 'udp-unicast-if':
        s = udp(); s.setsockopt(socket.IPPROTO_IP, IP_UNICAST_IF, struct.pack('!I', ifindex)); s.sendto(payload, (peer4, port))
    elif method == 'udp6-unicast-if':
        s = udp(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, IPV6_UNICAST_IF, struct.pack("!I", ifindex)); s.sendto(payload, (peer6, port))
    elif method == 'udp-multicast':
        s = udp(); s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack('@4s4si', b'\0' * 4, b'\0' * 4, ifindex)); s.sendto(payload, ('239.1.2.3', port))
    elif method == 'udp6-multicast':
        s = udp(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex); s.sendto(payload, ('ff02::1', port))
    elif method == 'udp-broadcast':
        s = udp(); s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        net = peer4.rsplit('.', 1)[0] + '.255'
        s.sendto(payload, (net, port))
    elif method == 'udp-limited-broadcast':
        s = udp(); s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1); s.sendto(payload, ('255.255.255.255', port))
    elif method == 'udp6-link-local':
        udp(socket.AF_INET6).sendto(payload, (peerll, port, 0, ifindex))
    elif method == 'tcp6-link-local':
        tcp_connect(socket.socket(socket.AF_INET6), (peerll, port, 0, ifindex))
    elif method == 'udp6-link-local-multicast':
        udp(socket.AF_INET6).sendto(payload, ('ff02::1', port, 0, ifindex))
    else:
        sys.exit('unknown method ' + method)

try:
    run()
    print('sent')
except OSError as e:
    print('refused', errno.errorcode.get(e.errno, str(e.errno)))
