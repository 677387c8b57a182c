using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Via.Cli.Commands.Ls;

namespace Via.Cli.Commands.Top;

/// <summary>'via top': every route, its processes, its rates in and out and its refused packets, live.</summary>
public static class TopCommand
{
    public static readonly Option<double> Interval = new("--interval", "-n")
    {
        Description = "Seconds between refreshes (default 1).",
        DefaultValueFactory = _ => 1,
    };

    public static readonly Option<int?> Count = new("--count") { Description = "Stop after this many refreshes (default: until Ctrl-C)." };

    public static readonly Option<bool> Json = new("--json") { Description = "One JSON object per refresh and line (NDJSON), for scripts." };

    public static Command Create()
    {
        var command = new Command("top", """
            Show every route live: its interface and state, what its programs send out and receive through
            the interface per second, the total so far, the packets the egress guard refused (aimed at another
            interface), and the processes in it. Refreshes in place until Ctrl-C; when stdout is not a
            terminal, prints plain lines, one per route and refresh.

              via top
              via top --interval 5
              via top --count 3 --json | jq '.routes[] | {id, outRate}'
            """) { Interval, Count, Json };
        command.SetAction(parse => Say.Guard(() => Run(parse.GetValue(Interval), parse.GetValue(Count), parse.GetValue(Json))));
        return command;
    }

    public static int Run(double interval, int? count, bool json)
    {
        if (!(interval > 0) || interval > 86400)
            return Say.Error($"--interval {interval.ToString(CultureInfo.InvariantCulture)}: give a number of seconds above 0 (e.g. 0.5, 1, 5)");
        if (count is <= 0)
            return Say.Error($"--count {count}: give a number of refreshes above 0, or leave it out to run until Ctrl-C");

        using var stop = new ManualResetEventSlim();
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Set(); });
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Set(); });
        bool live = !json && !Console.IsOutputRedirected;
        if (live) Console.Write("\x1b[?25l"); // hide the cursor while redrawing
        try
        {
            var previous = new Dictionary<string, (DateTimeOffset At, TrafficListing Traffic)>();
            for (int n = 0; count is null || n < count; n++)
            {
                if (n > 0 && stop.Wait(TimeSpan.FromSeconds(interval))) break;
                var now = DateTimeOffset.UtcNow;
                var rows = RouteListing.ReadAll(now).Select(r => Sample(r, now, previous)).ToArray();
                previous = rows.Where(r => r.Route.Traffic is not null).ToDictionary(r => r.Route.Id, r => (now, r.Route.Traffic!));
                if (json) Console.WriteLine(JsonSerializer.Serialize(new TopSample(now, rows.Select(r => r.ToJson()).ToArray()), TopJson.Default.TopSample));
                else if (live) Redraw(rows, now, interval);
                else Plain(rows, now);
                Console.Out.Flush();
            }
        }
        finally
        {
            if (live) Console.Write("\x1b[?25h");
        }
        return ExitCodes.Ok;
    }

    private sealed record Row(RouteListing Route, double? OutRate, double? InRate, double? RefusedRate)
    {
        public TopRoute ToJson() => new(Route.Id, Route.Device, Route.State, OutRate, InRate, RefusedRate, Route.Traffic, Route.Processes);
    }

    /// <summary>Rates since the previous refresh; none on the first, or for a route that is new since.</summary>
    private static Row Sample(RouteListing r, DateTimeOffset now, Dictionary<string, (DateTimeOffset At, TrafficListing Traffic)> previous)
    {
        if (r.Traffic is not { } t || !previous.TryGetValue(r.Id, out var p)) return new Row(r, null, null, null);
        double seconds = Math.Max((now - p.At).TotalSeconds, 1e-3);
        static double Rate(ulong now, ulong before, double s) => now >= before ? (now - before) / s : 0;
        return new Row(r, Rate(t.OutBytes, p.Traffic.OutBytes, seconds), Rate(t.InBytes, p.Traffic.InBytes, seconds), Rate(t.RefusedPackets, p.Traffic.RefusedPackets, seconds));
    }

    private static string Header => $"{"ROUTE",-8} {"DEV",-10} {"STATE",-8} {"OUT/s",-9} {"IN/s",-9} {"OUT",-7} {"IN",-7} {"REFUSED",-8} {"REF/s",-6} PROCESSES";

    private static string Line(Row r)
    {
        var t = r.Route.Traffic;
        string Rate(double? v, Func<double, string> f) => v is { } x ? f(x) + "/s" : "-";
        return $"{r.Route.Id,-8} {r.Route.Device,-10} {r.Route.State,-8} {Rate(r.OutRate, Units.Bytes),-9} {Rate(r.InRate, Units.Bytes),-9} "
            + $"{(t is null ? "-" : Units.Bytes(t.OutBytes)),-7} {(t is null ? "-" : Units.Bytes(t.InBytes)),-7} {(t is null ? "-" : Units.Count(t.RefusedPackets)),-8} "
            + $"{(r.RefusedRate is { } rr ? Units.Count(rr) : "-"),-6} {r.Route.Processes.Length}";
    }

    private static void Redraw(Row[] rows, DateTimeOffset now, double interval)
    {
        var screen = new System.Text.StringBuilder();
        screen.Append("\x1b[H"); // home; each line clears its own rest, then everything below goes
        screen.Append($"via top: {rows.Length} route{(rows.Length == 1 ? "" : "s")}, every {interval.ToString(CultureInfo.InvariantCulture)}s, Ctrl-C to stop    {now.ToLocalTime():HH:mm:ss}").Append("\x1b[K\n\x1b[K\n");
        screen.Append(Header).Append("\x1b[K\n");
        int height = Console.IsOutputRedirected ? int.MaxValue : Math.Max(Console.WindowHeight, 5);
        int used = 3;
        foreach (var r in rows)
        {
            if (used++ >= height - 1) break;
            screen.Append(Line(r)).Append("\x1b[K\n");
            foreach (var p in r.Route.Processes)
            {
                if (used++ >= height - 1) break;
                string command = p.Command.Length > 70 ? p.Command[..67] + "..." : p.Command;
                screen.Append($"{"",-9}{p.Pid} {p.User} {command}").Append("\x1b[K\n");
            }
        }
        if (rows.Length == 0) screen.Append("no routes\x1b[K\n");
        screen.Append("\x1b[J");
        Console.Write(screen.ToString());
    }

    private static void Plain(Row[] rows, DateTimeOffset now)
    {
        string at = now.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        if (rows.Length == 0) Console.WriteLine($"{at} no routes");
        foreach (var r in rows)
        {
            var t = r.Route.Traffic;
            string Rate(double? v) => v is { } x ? x.ToString("0", CultureInfo.InvariantCulture) : "-";
            Console.WriteLine($"{at} route={r.Route.Id} dev={r.Route.Device} state={r.Route.State} out_bytes_per_s={Rate(r.OutRate)} in_bytes_per_s={Rate(r.InRate)} "
                + $"out_bytes={t?.OutBytes.ToString(CultureInfo.InvariantCulture) ?? "-"} in_bytes={t?.InBytes.ToString(CultureInfo.InvariantCulture) ?? "-"} "
                + $"refused_packets={t?.RefusedPackets.ToString(CultureInfo.InvariantCulture) ?? "-"} processes={r.Route.Processes.Length}");
        }
    }
}

public sealed record TopRoute(string Id, string Device, string State, double? OutRate, double? InRate, double? RefusedRate, TrafficListing? Traffic, ProcessListing[] Processes);

public sealed record TopSample(DateTimeOffset Time, TopRoute[] Routes);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(TopSample))]
internal sealed partial class TopJson : JsonSerializerContext;
