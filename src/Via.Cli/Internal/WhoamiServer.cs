using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Via.Cli.Internal;

/// <summary>
/// The upstream server of 'via demo' and of the tests: answers every TCP connection (as HTTP, so
/// curl and wget can ask) and every UDP datagram with "NAME PEER-ADDRESS", and logs each on stdout.
/// Runs until killed.
/// </summary>
public static class WhoamiServer
{
    public const string Verb = "__serve";

    public static int Run(ReadOnlySpan<string> args)
    {
        string name = "server";
        int port = 8080;
        var udpAddresses = new List<IPAddress>();
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            if (args[i] == "--name") name = args[i + 1];
            else if (args[i] == "--port") port = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
            else if (args[i] == "--udp") udpAddresses.Add(IPAddress.Parse(args[i + 1]));
        }
        var tcp = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true };
        tcp.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        tcp.Bind(new IPEndPoint(IPAddress.IPv6Any, port));
        tcp.Listen(512);
        var log = new object();
        void Log(string line) { lock (log) { Console.Out.WriteLine(line); Console.Out.Flush(); } }

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
                udp.SendTo(Encoding.ASCII.GetBytes($"{name} {peer}\n"), from);
                log($"udp {name} {peer}");
            }
        }) { IsBackground = true };
        udpThread.Start();
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
                client.Send(Encoding.ASCII.GetBytes($"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"));
                log($"tcp {name} {peer}");
            }
            catch (SocketException) { }
        }
    }

    /// <summary>An IPv4 peer of a dual-stack socket shows as ::ffff:a.b.c.d; print it as a.b.c.d.</summary>
    private static string Plain(IPAddress a) => (a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a).ToString();
}
