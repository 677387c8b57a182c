using System.Buffers.Binary;
using System.Text;

namespace Via.Mechanisms.Preload;

/// <summary>What the preload mechanism reads in a program's ELF file, beyond what the engine tells it (static, set-id).</summary>
public static class ProgramFile
{
    /// <summary>An ELF file's class (32/64-bit), byte order and machine; null if it is not ELF (a script: its interpreter decides).</summary>
    public static (byte Class, byte Order, ushort Machine)? Kind(string path)
    {
        Span<byte> header = stackalloc byte[20];
        try
        {
            using var file = File.OpenHandle(path);
            if (RandomAccess.Read(file, header, 0) < header.Length) return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        if (header[0] != 0x7f || header[1] != (byte)'E' || header[2] != (byte)'L' || header[3] != (byte)'F') return null;
        ushort machine = header[5] == 2 ? BinaryPrimitives.ReadUInt16BigEndian(header[18..]) : BinaryPrimitives.ReadUInt16LittleEndian(header[18..]);
        return (header[4], header[5], machine);
    }

    /// <summary>
    /// True for a Go program (a section .go.buildinfo or .note.go.buildid): its net package makes
    /// sockets with system calls of its own, never through libc's socket(), even when it is
    /// dynamically linked (cgo), so LD_PRELOAD sees none of them. 64-bit little-endian ELF only
    /// (x86_64, arm64, riscv64); anything else is not judged.
    /// </summary>
    public static bool IsGo(string path)
    {
        try
        {
            using var file = File.OpenHandle(path);
            Span<byte> h = stackalloc byte[64];
            if (RandomAccess.Read(file, h, 0) < 64 || h[0] != 0x7f || h[1] != (byte)'E' || h[4] != 2 || h[5] != 1) return false;
            long shoff = (long)BinaryPrimitives.ReadUInt64LittleEndian(h[0x28..]);
            int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(h[0x3a..]);
            int shnum = BinaryPrimitives.ReadUInt16LittleEndian(h[0x3c..]);
            int shstrndx = BinaryPrimitives.ReadUInt16LittleEndian(h[0x3e..]);
            if (shoff <= 0 || shentsize < 64 || shnum <= 0 || shnum > 4096 || shstrndx >= shnum) return false;
            var sections = new byte[shentsize * shnum];
            if (RandomAccess.Read(file, sections, shoff) < sections.Length) return false;
            var names = sections.AsSpan(shstrndx * shentsize);
            long namesAt = (long)BinaryPrimitives.ReadUInt64LittleEndian(names[0x18..]);
            long namesSize = (long)BinaryPrimitives.ReadUInt64LittleEndian(names[0x20..]);
            if (namesSize <= 0 || namesSize > 1 << 20) return false;
            var table = new byte[namesSize];
            if (RandomAccess.Read(file, table, namesAt) < table.Length) return false;
            for (int i = 0; i < shnum; i++)
            {
                int at = (int)BinaryPrimitives.ReadUInt32LittleEndian(sections.AsSpan(i * shentsize));
                if (at >= table.Length) continue;
                int end = Array.IndexOf(table, (byte)0, at);
                string name = Encoding.ASCII.GetString(table, at, (end < 0 ? table.Length : end) - at);
                if (name is ".go.buildinfo" or ".note.go.buildid") return true;
            }
            return false;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
