using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Via.Kernel;

/// <summary>
/// Where a via process spends its time, opt-in: with <c>VIA_TRACE=1</c> via prints one line on
/// stderr at exit, <c>via trace: start=812 parse=240 ... total=5123</c> (microseconds per phase, in
/// the order they happened); with <c>VIA_TRACE=/path</c> it appends that line to the file instead
/// (the benchmark's children have no stderr). <see cref="Mark"/> ends the phase it names.
/// The first phase, <c>start</c>, is the time from exec to Main: it needs the caller's
/// CLOCK_MONOTONIC at fork in <c>VIA_TRACE_T0</c> (nanoseconds, as bench/spawn sets it), and is
/// left out without it. Off (the default), a mark costs one static bool test.
/// </summary>
public static class PhaseTrace
{
    private static readonly string? Target = Environment.GetEnvironmentVariable("VIA_TRACE") is { Length: > 0 } t && t != "0" ? t : null;

    public static readonly bool On = Target is not null;

    private static readonly long[] Stamps = new long[On ? 96 : 0];
    private static readonly string[] Names = new string[On ? 96 : 0];
    private static int _count;

    /// <summary>Ends the phase <paramref name="phase"/> now (the time since the previous mark is its).</summary>
    public static void Mark(string phase)
    {
        if (!On) return;
        long now = Stopwatch.GetTimestamp();
        int i = Interlocked.Increment(ref _count) - 1;
        if (i >= Stamps.Length) return;
        Stamps[i] = now;
        Names[i] = phase;
    }

    /// <summary>Writes the line (once; later calls do nothing). Never throws: a trace must not change an outcome.</summary>
    public static void Report()
    {
        if (!On) return;
        int n = Math.Min(Interlocked.Exchange(ref _count, int.MaxValue / 2), Stamps.Length);
        if (n <= 0 || n >= int.MaxValue / 2) return;
        try
        {
            // Stopwatch is CLOCK_MONOTONIC in nanoseconds on Linux, the clock bench/spawn reads.
            double tick = 1e6 / Stopwatch.Frequency;
            long origin = long.TryParse(Environment.GetEnvironmentVariable("VIA_TRACE_T0"), NumberStyles.None, CultureInfo.InvariantCulture, out long t0)
                ? (long)(t0 * (Stopwatch.Frequency / 1e9)) : Stamps[0];
            var line = new StringBuilder("via trace:");
            long previous = origin;
            for (int i = 0; i < n; i++)
            {
                if (i == 0 && origin == Stamps[0]) continue; // no T0: no start phase
                line.Append(CultureInfo.InvariantCulture, $" {Names[i]}={(Stamps[i] - previous) * tick:0}");
                previous = Stamps[i];
            }
            line.Append(CultureInfo.InvariantCulture, $" total={(Stamps[n - 1] - origin) * tick:0}\n");
            if (Target == "1") Console.Error.Write(line.ToString());
            else File.AppendAllText(Target!, line.ToString());
        }
        catch (Exception)
        {
            // the trace is a diagnostic: losing it is better than failing the command
        }
    }
}
