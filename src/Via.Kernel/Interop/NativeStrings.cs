using System.Runtime.InteropServices;
using System.Text;

namespace Via.Kernel.Interop;

/// <summary>A NULL-terminated array of NUL-terminated UTF-8 strings (argv, envp) in native memory.</summary>
internal sealed unsafe class NativeStrings : IDisposable
{
    private readonly nint[] _strings;

    public byte** Pointer { get; }

    public NativeStrings(IReadOnlyList<string> values)
    {
        _strings = new nint[values.Count];
        Pointer = (byte**)NativeMemory.AllocZeroed((nuint)(values.Count + 1), (nuint)sizeof(nint));
        for (int i = 0; i < values.Count; i++)
        {
            var bytes = Encoding.UTF8.GetBytes(values[i] + "\0");
            _strings[i] = (nint)NativeMemory.Alloc((nuint)bytes.Length);
            bytes.CopyTo(new Span<byte>((void*)_strings[i], bytes.Length));
            Pointer[i] = (byte*)_strings[i];
        }
    }

    public void Dispose()
    {
        foreach (var s in _strings) NativeMemory.Free((void*)s);
        NativeMemory.Free(Pointer);
    }
}
