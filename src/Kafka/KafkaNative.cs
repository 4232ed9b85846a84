using System;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Threading;

namespace PipelineDsl.Kafka;

/// <summary>
/// Where librdkafka comes from. With the NuGet package librdkafka.redist (the normal case) Confluent.Kafka
/// loads its bundled copy. Where that package is replaced by an empty stand-in (this repository's build
/// machine; see scripts/install-librdkafka.sh), the library is the operating system's <c>librdkafka.so.1</c>.
/// </summary>
internal static class KafkaNative
{
    public const string LibraryName = "librdkafka";

    private static int _installed;

    /// <summary>Resolves "librdkafka" for this assembly's P/Invokes: by name first, then the versioned soname.</summary>
    public static void EnsureResolver()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 1) return;
        NativeLibrary.SetDllImportResolver(typeof(KafkaNative).Assembly, Resolve);
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != LibraryName) return IntPtr.Zero;
        foreach (var candidate in new[] { "librdkafka.so.1", "librdkafka.so", "librdkafka" })
        {
            if (NativeLibrary.TryLoad(candidate, assembly, searchPath, out var handle)) return handle;
        }

        return IntPtr.Zero;
    }
}
