using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Via.Cli.Internal;

/// <summary>
/// The upstream server of 'via demo' and of the tests: answers every TCP connection (as HTTP, so
/// curl and wget can ask) and every UDP datagram with "NAME PEER-ADDRESS", and logs each on stdout.
/// With --dns ADDRESS it also answers DNS on ADDRESS port 53: <see cref="TestName"/> has A
/// 198.51.100.1 and AAAA 2001:db8:100::1, every other name is NXDOMAIN; each query is logged as
/// "dns NAME PEER QNAME TYPE", so a test sees which way a program's lookups went. --port 0: DNS only.
/// Runs until killed.
/// </summary>
public static class WhoamiServer
{
    public const string Verb = "__serve";

    public const string TestName = "svc.via.test";

    public static int Run(ReadOnlySpan<string> args)
    {
        string name = "server";
        int port = 8080;
        var udpAddresses = new List<IPAddress>();
        var dnsAddresses = new List<IPAddress>();
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            if (args[i] == "--name") name = args[i + 1];
            else if (args[i] == "--port") port = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
            else if (args[i] == "--udp") udpAddresses.Add(IPAddress.Parse(args[i + 1]));
            else if (args[i] == "--dns") dnsAddresses.Add(IPAddress.Parse(args[i + 1]));
        }
        var log = new object();
        void Log(string line) { lock (log) { Console.Out.WriteLine(line); Console.Out.Flush(); } }
        foreach (var address in dnsAddresses)
        {
            var udp = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new IPEndPoint(address, 53));
            StartDns(udp, name, Log);
        }
        if (port == 0)
        {
            Log($"listening {name} dns");
            Thread.Sleep(Timeout.Infinite);
        }
        var tcp = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true };
        tcp.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        tcp.Bind(new IPEndPoint(IPAddress.IPv6Any, port));
        tcp.Listen(512);

        // UDP answers come from the socket's own address, so each address the server is reached at
        // gets its own socket: a wildcard socket would answer from whatever source the route picks.
        if (udpAddresses.Count == 0) udpAddresses.Add(IPAddress.IPv6Any);
        foreach (var address in udpAddresses)
        {
            var udp = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            if (address.Equals(IPAddress.IPv6Any)) udp.DualMode = true;
            udp.Bind(new IPEndPoint(address, port));
            StartUdp(udp, name, Log);
        }
        Log($"listening {name} {port}");

        while (true)
        {
            var client = tcp.Accept();
            ThreadPool.QueueUserWorkItem(_ => Answer(client, name, Log));
        }
    }

    private static void StartUdp(Socket udp, string name, Action<string> log)
    {
        var udpThread = new Thread(() =>
        {
            var buffer = new byte[2048];
            EndPoint from = new IPEndPoint(udp.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
            while (true)
            {
                udp.ReceiveFrom(buffer, ref from);
                string peer = Plain(((IPEndPoint)from).Address);
                log($"udp {name} {peer}"); // logged before the answer: a client that has it finds it in the log
                udp.SendTo(Encoding.ASCII.GetBytes($"{name} {peer}\n"), from);
            }
        }) { IsBackground = true };
        udpThread.Start();
    }

    private static void StartDns(Socket udp, string name, Action<string> log)
    {
        var thread = new Thread(() =>
        {
            var buffer = new byte[1500];
            EndPoint from = new IPEndPoint(udp.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
            while (true)
            {
                int n = udp.ReceiveFrom(buffer, ref from);
                if (DnsAnswer(buffer.AsSpan(0, n), out string qname, out ushort qtype) is not { } answer) continue;
                log($"dns {name} {Plain(((IPEndPoint)from).Address)} {qname} {qtype switch { 1 => "A", 28 => "AAAA", _ => qtype.ToString(CultureInfo.InvariantCulture) }}");
                udp.SendTo(answer, from);
            }
        }) { IsBackground = true };
        thread.Start();
    }

    /// <summary>The answer to one query (RFC 1035 section 4): the question echoed, one A or AAAA record for the test name.</summary>
    private static byte[]? DnsAnswer(ReadOnlySpan<byte> query, out string qname, out ushort qtype)
    {
        qname = "";
        qtype = 0;
        if (query.Length < 12 || (query[2] & 0x80) != 0 || (query[4] << 8 | query[5]) != 1) return null;
        int at = 12;
        var labels = new List<string>();
        while (at < query.Length && query[at] != 0)
        {
            int length = query[at];
            if (length > 63 || at + 1 + length > query.Length) return null;
            labels.Add(Encoding.ASCII.GetString(query.Slice(at + 1, length)));
            at += 1 + length;
        }
        if (at + 5 > query.Length) return null;
        qname = string.Join('.', labels).ToLowerInvariant();
        qtype = (ushort)(query[at + 1] << 8 | query[at + 2]);
        int questionEnd = at + 5;
        byte[]? data = qname != TestName ? null
            : qtype == 1 ? IPAddress.Parse("198.51.100.1").GetAddressBytes()
            : qtype == 28 ? IPAddress.Parse("2001:db8:100::1").GetAddressBytes()
            : null;
        var answer = new List<byte>(query[..questionEnd].ToArray());
        answer[2] = (byte)(0x84 | (query[2] & 0x01)); // QR, AA, and the query's RD
        answer[3] = (byte)(qname == TestName ? 0x00 : 0x03); // NOERROR (empty for other types), or NXDOMAIN
        answer[6] = 0; answer[7] = (byte)(data is null ? 0 : 1); // ANCOUNT
        answer[8] = answer[9] = answer[10] = answer[11] = 0; // no authority, no additional (an OPT record is not echoed)
        if (data is not null)
        {
            answer.AddRange([0xc0, 12, (byte)(qtype >> 8), (byte)qtype, 0, 1, 0, 0, 0, 60, 0, (byte)data.Length]);
            answer.AddRange(data);
        }
        return [.. answer];
    }

    private static void Answer(Socket client, string name, Action<string> log)
    {
        using (client)
        {
            try
            {
                string peer = Plain(((IPEndPoint)client.RemoteEndPoint!).Address);
                client.ReceiveTimeout = 2000;
                var request = new StringBuilder();
                var buffer = new byte[1024];
                while (!request.ToString().Contains("\r\n\r\n") && !request.ToString().Contains("\n\n"))
                {
                    int n = client.Receive(buffer);
                    if (n == 0) break;
                    request.Append(Encoding.ASCII.GetString(buffer, 0, n));
                }
                string body = $"{name} {peer}\n";
                log($"tcp {name} {peer}"); // before the answer: a client that has it finds it in the log
                client.Send(Encoding.ASCII.GetBytes($"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"));
            }
            catch (SocketException) { }
        }
    }

    /// <summary>An IPv4 peer of a dual-stack socket shows as ::ffff:a.b.c.d; print it as a.b.c.d.</summary>
    private static string Plain(IPAddress a) => (a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a).ToString();
}
