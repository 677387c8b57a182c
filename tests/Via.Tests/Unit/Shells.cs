using System.Diagnostics;

namespace Via.Tests.Unit;

/// <summary>
/// The real shells the completion tests run (and groff for the man page). A missing one fails
/// the test, saying what to install: a skipped syntax check would let a broken script through.
/// </summary>
internal static class Shells
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    /// <summary>Debian package of each program.</summary>
    private static readonly Dictionary<string, string> Packages = new()
    {
        ["bash"] = "bash", ["zsh"] = "zsh", ["fish"] = "fish", ["groff"] = "groff-base",
    };

    public static string Find(string program)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':'))
        {
            string path = Path.Combine(dir, program);
            if (File.Exists(path)) return path;
        }
        Assert.Fail($"{program} is not installed; the completion and man page tests need it: apt-get install {Packages.GetValueOrDefault(program, program)} (.ci/run installs it)");
        return "";
    }

    public static Result Run(string program, IEnumerable<string> args, IDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(Find(program)) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) start.Environment[k] = v;
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{program} {string.Join(' ', args)} did not finish within 60 s");
        }
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Writes a generated script to a temporary file, for a shell to read.</summary>
    public static string Save(string text, string name)
    {
        string dir = Directory.CreateTempSubdirectory("via-completion-").FullName;
        string path = Path.Combine(dir, name);
        File.WriteAllText(path, text);
        return path;
    }
}
