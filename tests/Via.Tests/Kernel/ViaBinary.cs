namespace Via.Tests.Kernel;

/// <summary>The NativeAOT binary under test: bin/via at the repository root (README step 1 builds it).</summary>
public static class ViaBinary
{
    public static string RepositoryRoot { get; } = FindRoot();

    public static string Path
    {
        get
        {
            string path = System.IO.Path.Combine(RepositoryRoot, "bin", "via");
            if (!File.Exists(path))
                throw new InvalidOperationException($"{path} is missing: build it first with 'dotnet publish src/Via.Cli -c Release -o bin' (README, step 1)");
            return path;
        }
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "via.sln"))) return dir.FullName;
        throw new InvalidOperationException("repository root (via.sln) not found above " + AppContext.BaseDirectory);
    }
}
