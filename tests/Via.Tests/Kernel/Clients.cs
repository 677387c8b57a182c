namespace Via.Tests.Kernel;

/// <summary>Real client programs, as argument vectors: each asks the topology's server who it saw.</summary>
public static class Clients
{
    public const string Python = "/usr/bin/python3";

    private const string PythonAsk = """
        import socket, sys
        proto, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
        fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
        if proto == 'tcp':
            s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(5); s.connect((addr, port))
            s.sendall(b'GET / HTTP/1.0\r\n\r\n'); data = b''
            while True:
                d = s.recv(4096)
                if not d: break
                data += d
            print(data.split(b'\r\n\r\n', 1)[1].decode().strip())
        else:
            s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(5); s.sendto(b'?', (addr, port))
            print(s.recv(999).decode().strip())
        """;

    public static string[] Curl(string address) =>
        ["curl", "-sS", "--max-time", "10", $"http://{(address.Contains(':') ? $"[{address}]" : address)}:{Via.Port}/"];

    /// <summary>busybox-static's wget: a statically linked binary, no libc hooks possible.
    /// (Its -T timeout option crashes busybox 1.35 as shipped in Debian 12: not used.)</summary>
    /// <summary>The client programs every route is checked with, as the contract's <c>Programs</c> rows name them:
    /// curl (dynamic, TCP), python (UDP), busybox (static, TCP).</summary>
    public static string[] Named(string program, string proto, string address) => program switch
    {
        "curl" => Curl(address),
        "python" => PythonClient(proto, address),
        _ => StaticWget(address),
    };

    public static string[] StaticWget(string address) =>
        ["/bin/busybox", "wget", "-q", "-O", "-", $"http://{(address.Contains(':') ? $"[{address}]" : address)}:{Via.Port}/"];

    public static string[] PythonClient(string proto, string address) => [Python, "-c", PythonAsk, proto, address, Via.Port];

    /// <summary>The NativeAOT .NET client built into via.</summary>
    public static string[] DotNet(string proto, string address) => [ViaBinary.Path, "__probe", proto, address, Via.Port];

    /// <summary>
    /// A python program for the kill-switch tests: asks isp2's address once ("before ..."), waits for
    /// the file <paramref name="flag"/> (the test takes the uplink down, then writes it), then asks
    /// over tcp4, udp4, tcp6 and udp6 and prints each answer or its error, one line each.
    /// </summary>
    public static string KillSwitchProbe(string flag) => $$"""
            import os, socket, time
            def ask(fam, addr, kind):
                try:
                    s = socket.socket(fam, kind); s.settimeout(3)
                    if kind == socket.SOCK_STREAM:
                        s.connect((addr, 8080)); s.sendall(b'GET / HTTP/1.0\r\n\r\n'); return s.makefile().read().split('\n')[-2]
                    s.sendto(b'?', (addr, 8080)); return s.recv(999).decode().strip()
                except OSError as e:
                    return 'error ' + (os.strerror(e.errno) if e.errno else type(e).__name__)
            print('before', ask(socket.AF_INET, '198.51.100.1', socket.SOCK_STREAM), flush=True)
            while not os.path.exists('{{flag}}'): time.sleep(0.05)
            print('tcp4', ask(socket.AF_INET, '198.51.100.1', socket.SOCK_STREAM), flush=True)
            print('udp4', ask(socket.AF_INET, '198.51.100.1', socket.SOCK_DGRAM), flush=True)
            print('tcp6', ask(socket.AF_INET6, '2001:db8:100::1', socket.SOCK_STREAM), flush=True)
            print('udp6', ask(socket.AF_INET6, '2001:db8:100::1', socket.SOCK_DGRAM), flush=True)
            """;
}
