using System;
using System.Collections.Generic;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace PipelineDsl.State;

/// <summary>One key's slot in a <see cref="StateTable{TKey, TValue}"/>: its state and the batch it was last written in.</summary>
internal struct StateSlot<TKey, TValue>
{
    public TKey Key;
    public TValue Value;

    /// <summary>The batch that last wrote the state (for idle expiry and deltas).</summary>
    public long LastSeen;

    /// <summary>The key's hash (never negative) while the slot is live; -1 once removed.</summary>
    public int Hash;

    /// <summary>The next slot in the bucket's chain plus one, 0 at its end (as a bucket holds its first slot plus one).</summary>
    public int Next;

    public readonly bool IsLive => Hash >= 0;
}

/// <summary>
/// A hash table of keyed state built for the per-record path of keyed operators, where a
/// <see cref="Dictionary{TKey, TValue}"/> costs a second lookup per touched key at every checkpoint:
/// <list type="bullet">
/// <item>a key's slot index is stable while it lives (growing keeps indices), so a batch records the slots it
/// wrote and its delta reads them back without hashing again;</item>
/// <item>a slot freed during a batch is reused only after <see cref="ReleaseRemoved"/> (at the start of the next
/// batch), so a slot index recorded during a batch never points at another key;</item>
/// <item>the caller passes the hash, computed once per record and also used to pick the shard.</item>
/// </list>
/// Buckets are a power of two, indexed by the hash's Fibonacci product (its high bits), so that a shard chosen
/// from the hash's low bits still spreads over all buckets. Not thread-safe: one shard, one worker.
/// </summary>
internal sealed class StateTable<TKey, TValue> where TKey : notnull
{
    private readonly IEqualityComparer<TKey>? _comparer;
    private int[] _buckets; // first slot of the chain + 1; 0 = empty
    private StateSlot<TKey, TValue>[] _slots;
    private int _shift;
    private int _used; // slots ever handed out (the high-water mark)
    private int _free; // reusable slots, chained through Next (index + 1; 0 = none)
    private readonly List<int> _removed = new(); // freed during the current batch, reusable after ReleaseRemoved

    public StateTable(IEqualityComparer<TKey>? comparer, int capacity = 0)
    {
        // Value-type keys compare through EqualityComparer<TKey>.Default, which the JIT devirtualizes.
        _comparer = typeof(TKey).IsValueType ? null : comparer ?? EqualityComparer<TKey>.Default;
        int size = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, capacity));
        _buckets = new int[size];
        _slots = new StateSlot<TKey, TValue>[size];
        _shift = 32 - BitOperations.Log2((uint)size);
    }

    /// <summary>Live keys.</summary>
    public int Count { get; private set; }

    /// <summary>The slots up to the high-water mark; only those with <see cref="StateSlot{TKey, TValue}.IsLive"/> hold a key.</summary>
    public Span<StateSlot<TKey, TValue>> Slots => _slots.AsSpan(0, _used);

    /// <summary>The slot at <paramref name="index"/> (an index handed out by <see cref="GetOrAdd"/> in this batch).</summary>
    public ref StateSlot<TKey, TValue> this[int index] => ref _slots[index];

    /// <summary>The hash this table files <paramref name="key"/> under: never negative.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int HashOf(TKey key) =>
        (typeof(TKey).IsValueType ? EqualityComparer<TKey>.Default.GetHashCode(key) : _comparer!.GetHashCode(key)) & int.MaxValue;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Same(TKey a, TKey b) =>
        typeof(TKey).IsValueType ? EqualityComparer<TKey>.Default.Equals(a, b) : _comparer!.Equals(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int BucketOf(int hash) => (int)(((uint)hash * 2654435769u) >> _shift);

    /// <summary>
    /// Asks the CPU to start loading the bucket of a key of <paramref name="hash"/>. A batch knows its keys ahead:
    /// hinting the bucket some records before the lookup, and the slot it names a few records later
    /// (<see cref="PrefetchSlot"/>), overlaps the cache misses of many lookups instead of waiting for each in turn.
    /// Only a hint: it never faults, and an address the GC has since moved only wastes the hint.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchBucket(int hash) => CpuHints.Prefetch(ref _buckets[BucketOf(hash)]);

    /// <summary>Asks the CPU to start loading the first slot of a key's bucket (hinted earlier by <see cref="PrefetchBucket"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchSlot(int hash)
    {
        if (!CpuHints.Enabled) return;
        int first = _buckets[BucketOf(hash)] - 1;
        if ((uint)first < (uint)_slots.Length) CpuHints.Prefetch(ref _slots[first]);
    }

    /// <summary>Asks the CPU to start loading slot <paramref name="index"/> (for a pass over recorded slot indices).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchSlotAt(int index)
    {
        if (CpuHints.Enabled && (uint)index < (uint)_slots.Length) CpuHints.Prefetch(ref _slots[index]);
    }

    /// <summary>Asks the CPU to start loading the key object of slot <paramref name="index"/> (hinted earlier by <see cref="PrefetchSlotAt"/>), when keys are objects.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchKeyAt(int index)
    {
        if (CpuHints.Enabled && (uint)index < (uint)_slots.Length) CpuHints.PrefetchObject(_slots[index].Key);
    }

    /// <summary>
    /// The slot of <paramref name="key"/> (whose <see cref="HashOf"/> is <paramref name="hash"/>), added with a default
    /// value when missing; <paramref name="index"/> is its stable index.
    /// </summary>
    public ref StateSlot<TKey, TValue> GetOrAdd(TKey key, int hash, out bool existed, out int index)
    {
        var slots = _slots;
        int i = _buckets[BucketOf(hash)] - 1;
        while ((uint)i < (uint)slots.Length)
        {
            ref var slot = ref slots[i];
            if (slot.Hash == hash && Same(slot.Key, key))
            {
                existed = true;
                index = i;
                return ref slot;
            }

            i = slot.Next - 1;
        }

        existed = false;
        index = Add(key, hash);
        return ref _slots[index];
    }

    /// <summary>The index of <paramref name="key"/>'s slot, or -1.</summary>
    public int Find(TKey key, int hash)
    {
        var slots = _slots;
        int i = _buckets[BucketOf(hash)] - 1;
        while ((uint)i < (uint)slots.Length)
        {
            ref var slot = ref slots[i];
            if (slot.Hash == hash && Same(slot.Key, key)) return i;
            i = slot.Next - 1;
        }

        return -1;
    }

    private int Add(TKey key, int hash)
    {
        int index;
        if (_free > 0)
        {
            index = _free - 1;
            _free = _slots[index].Next;
        }
        else
        {
            if (_used == _slots.Length) Grow();
            index = _used++;
        }

        ref int bucket = ref _buckets[BucketOf(hash)];
        ref var slot = ref _slots[index];
        slot.Key = key;
        slot.Value = default!;
        slot.LastSeen = 0;
        slot.Hash = hash;
        slot.Next = bucket;
        bucket = index + 1;
        Count++;
        return index;
    }

    /// <summary>Doubles the table; slot indices stay as they are.</summary>
    private void Grow()
    {
        int size = _slots.Length * 2;
        Array.Resize(ref _slots, size);
        _buckets = new int[size];
        _shift--;
        for (int i = 0; i < _used; i++)
        {
            ref var slot = ref _slots[i];
            if (!slot.IsLive) continue;
            ref int bucket = ref _buckets[BucketOf(slot.Hash)];
            slot.Next = bucket;
            bucket = i + 1;
        }
    }

    /// <summary>Removes the key in slot <paramref name="index"/>; the slot is reused after the next <see cref="ReleaseRemoved"/>.</summary>
    public void RemoveAt(int index)
    {
        ref var slot = ref _slots[index];
        if (!slot.IsLive) return;
        ref int link = ref _buckets[BucketOf(slot.Hash)];
        while (link - 1 != index) link = ref _slots[link - 1].Next;
        link = slot.Next;
        slot.Key = default!;
        slot.Value = default!;
        slot.Hash = -1;
        slot.Next = 0;
        Count--;
        _removed.Add(index);
    }

    /// <summary>Makes the slots removed since the last call reusable (call between batches).</summary>
    public void ReleaseRemoved()
    {
        foreach (int index in _removed)
        {
            _slots[index].Next = _free;
            _free = index + 1;
        }

        _removed.Clear();
    }

    public void Clear()
    {
        Array.Clear(_buckets);
        Array.Clear(_slots, 0, _used);
        _used = 0;
        _free = 0;
        _removed.Clear();
        Count = 0;
    }

    /// <summary>Makes room for <paramref name="count"/> keys in all without growing one step at a time.</summary>
    public void EnsureCapacity(int count)
    {
        while (_slots.Length < count) Grow();
    }
}
