using Via.Cli.Commands.Demo;
using Xunit.Abstractions;

namespace Via.Tests.Kernel;

/// <summary>The NativeAOT publish is clean: no trim or AOT warning (they are errors too, so a warning also fails the build).</summary>
public sealed class AotPublishTests(ITestOutputHelper output)
{
    [Fact]
    public void Publishing_the_native_binary_gives_no_trim_or_aot_warning()
    {
        // A fresh copy of the sources: nothing incremental, so every compiler and ILC warning is printed.
        string work = Path.Combine(Path.GetTempPath(), $"via-aot-{Guid.NewGuid():N}");
        string outDir = Path.Combine(work, "out");
        try
        {
            CopySources(ViaBinary.RepositoryRoot, work);
            var (code, stdout, stderr) = Topology.Run("dotnet",
                ["publish", Path.Combine(work, "src", "Via.Cli"), "-c", "Release", "-o", outDir, "-nologo"],
                TimeSpan.FromMinutes(8));
            output.WriteLine(stdout + stderr);
            Assert.True(code == 0, "dotnet publish failed:\n" + stdout + stderr);
            var warnings = (stdout + stderr).Split('\n').Where(l => l.Contains("warning", StringComparison.OrdinalIgnoreCase)).ToList();
            Assert.True(warnings.Count == 0, "publish warnings:\n" + string.Join('\n', warnings));
            Assert.True(File.Exists(Path.Combine(outDir, "via")), "no native binary 'via' in the publish output");
            Assert.False(File.Exists(Path.Combine(outDir, "via.dll")), "publish produced a managed assembly, not a native binary");
        }
        finally
        {
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
    }

    private static void CopySources(string root, string target)
    {
        File.Copy(Path.Combine(root, "Directory.Build.props"), Path.Combine(Directory.CreateDirectory(target).FullName, "Directory.Build.props"));
        foreach (var file in Directory.EnumerateFiles(Path.Combine(root, "src"), "*", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(root, file);
            if (relative.Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj")) continue;
            string destination = Path.Combine(target, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
        }
    }
}
