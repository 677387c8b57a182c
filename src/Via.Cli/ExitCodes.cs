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

    /// <summary>A note on stderr while via goes on ("via: waiting for the lock held by ...").</summary>
    public static void Note(string message) => Console.Error.WriteLine("via: " + message);

    /// <summary>
    /// Runs a command, reporting any failure as one line and an exit status: a
    /// <see cref="ViaException"/> with its own, anything else with 125. The one error handler of
    /// every command (Program runs each under it): never a stack trace.
    /// </summary>
    public static int Guard(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (ViaException e)
        {
            return Error(OneLine(e.Message), e.ExitCode);
        }
        catch (Exception e)
        {
            return Error(Describe(e));
        }
    }

    /// <summary>
    /// What failed, in words. Failures via expects (the kernel, files, bad state) carry a message
    /// that names the object; anything else is a bug of via's, said so with its type.
    /// </summary>
    internal static string Describe(Exception e) => e switch
    {
        ViaException or Via.Kernel.KernelException or Via.Planning.PlanException or Via.Mechanisms.ApplyException or IOException
            or UnauthorizedAccessException or InvalidDataException or TimeoutException or System.ComponentModel.Win32Exception => OneLine(e.Message),
        _ => OneLine($"internal error ({e.GetType().Name}): {e.Message}; please report it"),
    };

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();
}
