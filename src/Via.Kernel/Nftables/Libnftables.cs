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

/// <summary>Runs nftables commands in the current network namespace through libnftables (never by spawning nft).</summary>
public static class Nftables
{
    /// <summary>
    /// Runs <paramref name="commands"/> (nft's own language, or its JSON form: libnftables takes both)
    /// as one transaction: all or nothing; returns what it printed. Throws with nft's error text when it fails or libnftables is missing.
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
            throw new InvalidOperationException($"{what}: libnftables.so.1 is not installed (Debian: apt install libnftables1)");
        }
        if (ctx == 0) throw new InvalidOperationException($"{what}: libnftables could not make a context");
        try
        {
            if (LibNftables.nft_ctx_buffer_output(ctx) != 0 || LibNftables.nft_ctx_buffer_error(ctx) != 0)
                throw new InvalidOperationException($"{what}: libnftables cannot buffer its output");
            if (LibNftables.nft_run_cmd_from_buffer(ctx, commands) != 0)
            {
                nint error = LibNftables.nft_ctx_get_error_buffer(ctx);
                string text = error == 0 ? "" : (Marshal.PtrToStringUTF8(error) ?? "").Trim();
                throw new InvalidOperationException($"{what}: {(text.Length > 0 ? text.Split('\n')[0] : "refused")}");
            }
            nint output = LibNftables.nft_ctx_get_output_buffer(ctx);
            return output == 0 ? "" : Marshal.PtrToStringUTF8(output) ?? "";
        }
        finally
        {
            LibNftables.nft_ctx_free(ctx);
        }
    }
}
