using System.Runtime.InteropServices;

namespace Via.Kernel.Nftables;

/// <summary>libnftables.so.1 (nftables' own library, what nft(8) is built on), declarations only.</summary>
internal static partial class LibNftables
{
    private const string Lib = "libnftables.so.1";

    /// <summary>NFT_CTX_DEFAULT and NFT_CTX_OUTPUT_JSON (nftables/libnftables.h).</summary>
    internal const uint CtxDefault = 0, OutputJson = 1 << 4;

    [LibraryImport(Lib)]
    internal static partial nint nft_ctx_new(uint flags);

    [LibraryImport(Lib)]
    internal static partial void nft_ctx_free(nint ctx);

    [LibraryImport(Lib)]
    internal static partial void nft_ctx_output_set_flags(nint ctx, uint flags);

    [LibraryImport(Lib)]
    internal static partial int nft_ctx_buffer_output(nint ctx);

    [LibraryImport(Lib)]
    internal static partial int nft_ctx_buffer_error(nint ctx);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int nft_run_cmd_from_buffer(nint ctx, string buffer);

    [LibraryImport(Lib)]
    internal static partial nint nft_ctx_get_output_buffer(nint ctx);

    [LibraryImport(Lib)]
    internal static partial nint nft_ctx_get_error_buffer(nint ctx);
}

/// <summary>Runs nftables commands in the current network namespace through libnftables (never by spawning nft).</summary>
public static class Nftables
{
    /// <summary>Whether libnftables can be loaded here.</summary>
    public static bool Available
    {
        get
        {
            try
            {
                nint ctx = LibNftables.nft_ctx_new(LibNftables.CtxDefault);
                if (ctx != 0) LibNftables.nft_ctx_free(ctx);
                return ctx != 0;
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                return false;
            }
        }
    }

    /// <summary>
    /// Runs nftables commands (nft's own syntax, or a JSON document: libnftables takes either) as one
    /// transaction: all of them or none. Returns the output; throws <see cref="KernelException"/>
    /// with libnftables' error text, naming <paramref name="what"/>.
    /// </summary>
    public static string Run(string commands, string what)
    {
        nint ctx;
        try
        {
            ctx = LibNftables.nft_ctx_new(LibNftables.CtxDefault);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            throw new KernelException("nftables", what, Errno.ENOENT, "libnftables.so.1 is not installed (Debian: apt install libnftables1)");
        }
        if (ctx == 0) throw new KernelException("nftables", what, Errno.ENOMEM);
        try
        {
            if (LibNftables.nft_ctx_buffer_output(ctx) != 0 || LibNftables.nft_ctx_buffer_error(ctx) != 0)
                throw new KernelException("nftables", what, Errno.ENOMEM);
            if (LibNftables.nft_run_cmd_from_buffer(ctx, commands) != 0)
            {
                string error = Marshal.PtrToStringUTF8(LibNftables.nft_ctx_get_error_buffer(ctx)) ?? "";
                // libnftables says "Error: ..." with the offending line; the first line carries it.
                string first = error.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "failed";
                int errno = error.Contains("Operation not permitted", StringComparison.Ordinal) ? Errno.EPERM
                    : error.Contains("No such file or directory", StringComparison.Ordinal) ? Errno.ENOENT : Errno.EINVAL;
                throw new KernelException("nftables", what, errno, first.Trim());
            }
            return Marshal.PtrToStringUTF8(LibNftables.nft_ctx_get_output_buffer(ctx)) ?? "";
        }
        finally
        {
            LibNftables.nft_ctx_free(ctx);
        }
    }

    /// <summary>The names of the tables of one family ("inet"), or an empty list when they cannot be read.</summary>
    public static List<string> Tables(string family)
    {
        var names = new List<string>();
        string text;
        try { text = Run($"list tables {family}", "tables"); }
        catch (KernelException) { return names; }
        foreach (string line in text.Split('\n'))
        {
            // "table inet via_t23800"
            string[] words = line.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words.Length == 3 && words[0] == "table" && words[1] == family) names.Add(words[2]);
        }
        return names;
    }
}

/// <summary>The nftables ruleset of the current network namespace, read through libnftables.</summary>
public static class NftablesRuleset
{
    /// <summary>
    /// <c>nft -j list ruleset</c>, without spawning nft: the JSON text, or null where it cannot be
    /// read (libnftables not installed, no CAP_NET_ADMIN, an nftables too old for JSON). Callers
    /// treat null as "nothing known", never as an error: reading the firewall is a refinement.
    /// </summary>
    public static string? ListJson()
    {
        nint ctx;
        try
        {
            ctx = LibNftables.nft_ctx_new(LibNftables.CtxDefault);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
        if (ctx == 0) return null;
        try
        {
            LibNftables.nft_ctx_output_set_flags(ctx, LibNftables.OutputJson);
            // Both buffered: nothing of libnftables reaches via's own stdout or stderr.
            if (LibNftables.nft_ctx_buffer_output(ctx) != 0 || LibNftables.nft_ctx_buffer_error(ctx) != 0) return null;
            if (LibNftables.nft_run_cmd_from_buffer(ctx, "list ruleset") != 0) return null;
            nint text = LibNftables.nft_ctx_get_output_buffer(ctx);
            return text == 0 ? null : Marshal.PtrToStringUTF8(text);
        }
        finally
        {
            LibNftables.nft_ctx_free(ctx);
        }
    }
}
