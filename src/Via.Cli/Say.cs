namespace Via.Cli;

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

    internal static string Describe(Exception e) => Failure.Describe(e);

    private static string OneLine(string message) => Failure.OneLine(message);
}
