namespace Via.Cli;

/// <summary>Exit statuses, as env(1) and timeout(1) use them.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>via itself failed (bad input, no root, the host refused a change). Nothing was left changed.</summary>
    public const int ViaFailed = 125;
    /// <summary>The command was found but could not be executed.</summary>
    public const int CannotExecute = 126;
    /// <summary>The command was not found.</summary>
    public const int NotFound = 127;
    /// <summary>The program died of signal N: 128 + N.</summary>
    public const int SignalBase = 128;
}

/// <summary>A failure of via's own, reported as one line on stderr with its exit status.</summary>
public sealed class ViaException(string message, int exitCode = ExitCodes.ViaFailed) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

internal static class Say
{
    public static int Error(string message, int code = ExitCodes.ViaFailed)
    {
        Console.Error.WriteLine("via: " + message);
        return code;
    }

    /// <summary>Runs a command's action, reporting a <see cref="ViaException"/> as one line and its exit code.</summary>
    public static int Guard(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (ViaException e)
        {
            return Error(e.Message, e.ExitCode);
        }
    }
}
