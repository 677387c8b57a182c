using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Via.Cli.Internal;

/// <summary>
/// A small .NET client for the demo and the tests: <c>via __probe tcp|udp ADDRESS PORT</c> asks a
/// <see cref="WhoamiServer"/> who it saw and prints the answer; on failure prints the socket error
/// (e.g. NetworkUnreachable) and exits 1.
/// </summary>
public static class Probe
{
    public const string Verb = "__probe";

    public static int Run(ReadOnlySpan<string> args)
    {
        if (args.Length != 3 || !IPAddress.TryParse(args[1], out var address))
            return Say.Error("usage: via __probe tcp|udp ADDRESS PORT");
        var endpoint = new IPEndPoint(address, int.Parse(args[2], CultureInfo.InvariantCulture));
        try
        {
            string answer = args[0] == "udp" ? Udp(endpoint) : Tcp(endpoint);
            Console.WriteLine(answer.Trim());
            return 0;
        }
        catch (SocketException e)
        {
            Console.WriteLine("error " + e.SocketErrorCode);
            return 1;
        }
    }

    private static string Tcp(IPEndPoint endpoint)
    {
        using var s = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 3000, SendTimeout = 3000 };
        s.Connect(endpoint);
        s.Send("GET / HTTP/1.0\r\n\r\n"u8);
        var response = new StringBuilder();
        var buffer = new byte[1024];
        int n;
        while ((n = s.Receive(buffer)) > 0) response.Append(Encoding.ASCII.GetString(buffer, 0, n));
        string text = response.ToString();
        int body = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        return body >= 0 ? text[(body + 4)..] : text;
    }

    private static string Udp(IPEndPoint endpoint)
    {
        using var s = new Socket(endpoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 3000 };
        s.Connect(endpoint);
        s.Send("?"u8);
        var buffer = new byte[1024];
        int n = s.Receive(buffer);
        return Encoding.ASCII.GetString(buffer, 0, n);
    }
}
