using System.Buffers.Binary;

namespace Via.Kernel.Processes;

/// <summary>What the kernel will make of a program file: whether it has a dynamic loader, whether it is set-id.</summary>
public static class Executable
{
    private const uint PtInterp = 3;

    private static ReadOnlySpan<byte> ElfMagic => [0x7f, (byte)'E', (byte)'L', (byte)'F'];

    /// <summary>
    /// <paramref name="isStatic"/>: an ELF executable without PT_INTERP (no dynamic loader, so nothing
    /// preloads into it). A script (#!) or anything else is not static: its interpreter decides.
    /// <paramref name="setId"/>: the set-user-ID or set-group-ID bit.
    /// </summary>
    public static void Inspect(string path, out bool isStatic, out bool setId)
    {
        var mode = File.GetUnixFileMode(path);
        setId = (mode & (UnixFileMode.SetUser | UnixFileMode.SetGroup)) != 0;
        isStatic = false;
        using var file = File.OpenHandle(path);
        Span<byte> header = stackalloc byte[64];
        if (RandomAccess.Read(file, header, 0) < 52 || !header[..4].SequenceEqual(ElfMagic)) return;
        bool is64 = header[4] == 2, little = header[5] == 1;
        ulong U(ReadOnlySpan<byte> b, int size) => size switch
        {
            2 => little ? BinaryPrimitives.ReadUInt16LittleEndian(b) : BinaryPrimitives.ReadUInt16BigEndian(b),
            4 => little ? BinaryPrimitives.ReadUInt32LittleEndian(b) : BinaryPrimitives.ReadUInt32BigEndian(b),
            _ => little ? BinaryPrimitives.ReadUInt64LittleEndian(b) : BinaryPrimitives.ReadUInt64BigEndian(b),
        };
        ulong phoff = is64 ? U(header[32..], 8) : U(header[28..], 4);
        int phentsize = (int)(is64 ? U(header[54..], 2) : U(header[42..], 2));
        int phnum = (int)(is64 ? U(header[56..], 2) : U(header[44..], 2));
        if (phentsize < 4 || phnum <= 0 || phnum > 4096) return;
        var table = new byte[phentsize * phnum];
        if (RandomAccess.Read(file, table, (long)phoff) < table.Length) return;
        for (int i = 0; i < phnum; i++)
            if (U(table.AsSpan(i * phentsize), 4) == PtInterp) return;
        isStatic = true;
    }
}
