using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace PipelineDsl.State;

/// <summary>
/// Prefetch hints for the per-record loops of keyed operators. A batch knows its records, keys and slots ahead of
/// time: asking the CPU to load what the loop will need some iterations later overlaps many cache misses instead of
/// waiting for each in turn (the loops' cost at 100,000 keys and more is mostly such misses).
/// </summary>
/// <remarks>
/// A hint takes an address and never dereferences it: it cannot fault, and if the GC moves the object between
/// the hint and the use, the hint was merely wasted. That is why taking the address of a managed object without
/// pinning it is sound here and nowhere else; this is the only unsafe code of the runtime. On a CPU without the
/// instruction (not x86) every hint is a no-op.
/// </remarks>
internal static class CpuHints
{
    public static bool Enabled => Sse.IsSupported;

    /// <summary>Hints the cache line of <paramref name="location"/> (an array element).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Prefetch<T>(ref T location)
    {
        if (Sse.IsSupported) Sse.Prefetch0(Unsafe.AsPointer(ref location));
    }

    /// <summary>Hints the first cache line of the object <paramref name="value"/> refers to; nothing for a value type or null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void PrefetchObject<T>(T value)
    {
        if (!Sse.IsSupported || typeof(T).IsValueType) return;
        // A reference's bits are its object's address.
        nint address = Unsafe.As<T, nint>(ref value);
        if (address != 0) Sse.Prefetch0((void*)address);
    }
}
