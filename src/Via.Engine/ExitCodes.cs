namespace Via.Engine;

/// <summary>Exit statuses, as env(1) and timeout(1) use them.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>'via apply --check': the host differs from via.conf (applying would change something).</summary>
    public const int WouldChange = 1;
    /// <summary>via itself failed (bad input, no root, the host refused a change). Nothing was left changed.</summary>
    public const int ViaFailed = 125;
    /// <summary>The command was found but could not be executed.</summary>
    public const int CannotExecute = 126;
    /// <summary>The command was not found.</summary>
    public const int NotFound = 127;
    /// <summary>The program died of signal N: 128 + N.</summary>
    public const int SignalBase = 128;

    /// <summary>Each status and what it means, for the man page's EXIT STATUS (a test checks every code above is here).</summary>
    public static readonly IReadOnlyList<(string Status, string Meaning)> Meanings =
    [
        ($"{Ok}", "Success. 'via run' exits with the program's own status, whatever it is."),
        ($"{WouldChange}", "'via apply --check': the host differs from via.conf; 'via apply' would change what it printed."),
        ($"{ViaFailed}", "via itself failed (bad input, no root, the host refused a change); nothing on the host was left changed. The error is one line on stderr."),
        ($"{CannotExecute}", "'via run': the program was found but could not be executed."),
        ($"{NotFound}", "'via run': the program was not found."),
        ($"{SignalBase}+N", "'via run': the program died of signal N."),
    ];
}

/// <summary>A failure of via's own, reported as one line on stderr with its exit status.</summary>
public sealed class ViaException(string message, int exitCode = ExitCodes.ViaFailed) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>What failed, in words, for one line on stderr.</summary>
public static class Failure
{
    /// <summary>
    /// Failures via expects (the kernel, files, bad state) carry a message that names the object;
    /// anything else is a bug of via's, said so with its type.
    /// </summary>
    public static string Describe(Exception e) => e switch
    {
        ViaException or Via.Kernel.KernelException or Via.Planning.PlanException or Via.Mechanisms.ApplyException or IOException
            or UnauthorizedAccessException or InvalidDataException or TimeoutException or System.ComponentModel.Win32Exception => OneLine(e.Message),
        _ => OneLine($"internal error ({e.GetType().Name}): {e.Message}; please report it"),
    };

    public static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();
}
