using System;
using System.Runtime.CompilerServices;

namespace PipelineDsl.Nexmark;

/// <summary>
/// The linear congruential generator that <c>java.util.Random</c> specifies, bit for bit: the Nexmark
/// generator seeds one per event with the event id, so event content matches the Java implementations.
/// </summary>
internal struct JavaRandom
{
    private const long Multiplier = 0x5DEECE66DL;
    private const long Mask = (1L << 48) - 1;
    private long _state;

    public JavaRandom(long seed) => _state = (seed ^ Multiplier) & Mask;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Next(int bits)
    {
        _state = unchecked(_state * Multiplier + 0xBL) & Mask;
        return (int)(_state >>> (48 - bits));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int NextInt() => Next(32);

    // Inlined so that a constant bound (26, 13, ...) compiles to a multiplication instead of a division.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int NextInt(int bound)
    {
        if (bound <= 0) throw new ArgumentOutOfRangeException(nameof(bound), bound, "The bound must be positive.");
        int r = Next(31);
        int m = bound - 1;
        if ((bound & m) == 0) return (int)((bound * (long)r) >> 31);
        unchecked
        {
            for (int u = r; u - (r = u % bound) + m < 0; u = Next(31))
            {
            }
        }

        return r;
    }

    public long NextLong() => unchecked(((long)Next(32) << 32) + Next(32));

    public double NextDouble() => (((long)Next(26) << 27) + Next(27)) * (1.0 / (1L << 53));
}
