namespace PipelineDsl
{
    /// <summary>
    /// The state of one key, handed to an <see cref="UpdateStateAttribute">update-state</see> method.
    /// Read it, then <see cref="Update"/> or <see cref="Remove"/> it. The runtime reuses the instance
    /// between calls: do not keep a reference to it.
    /// </summary>
    /// <typeparam name="T">The state type.</typeparam>
    public sealed class KeyedState<T>
    {
        private T _value = default!;

        /// <summary>True when the key has state (from an earlier record or this call's <see cref="Update"/>).</summary>
        public bool Exists { get; private set; }

        /// <summary>The current state, or <c>default</c> when <see cref="Exists"/> is false.</summary>
        public T Value => _value;

        /// <summary>True when this call changed the state (updated or removed it).</summary>
        public bool IsChanged { get; private set; }

        /// <summary>Replaces the state of the key.</summary>
        public void Update(T value)
        {
            _value = value;
            Exists = true;
            IsChanged = true;
        }

        /// <summary>Removes the state of the key; it is gone from the next checkpoint on.</summary>
        public void Remove()
        {
            _value = default!;
            Exists = false;
            IsChanged = true;
        }

        /// <summary>Resets the instance for the next key. Called by the runtime.</summary>
        public void Reset(bool exists, T value)
        {
            _value = exists ? value : default!;
            Exists = exists;
            IsChanged = false;
        }
    }

    /// <summary>The result of a windowed aggregation for one key and one window.</summary>
    /// <typeparam name="TKey">The key type.</typeparam>
    /// <typeparam name="TValue">The aggregate type.</typeparam>
    public readonly struct Windowed<TKey, TValue>
    {
        /// <summary>Creates a window result.</summary>
        public Windowed(TKey key, TValue value, long windowStart, long windowEnd)
        {
            Key = key;
            Value = value;
            WindowStart = windowStart;
            WindowEnd = windowEnd;
        }

        /// <summary>The key.</summary>
        public TKey Key { get; }

        /// <summary>The aggregate of the key's records in the window.</summary>
        public TValue Value { get; }

        /// <summary>The first batch id in the window (inclusive).</summary>
        public long WindowStart { get; }

        /// <summary>The last batch id in the window (inclusive).</summary>
        public long WindowEnd { get; }

        /// <inheritdoc />
        public override string ToString() => $"[{WindowStart}..{WindowEnd}] {Key}: {Value}";
    }

    /// <summary>
    /// The result of an event-time window (tumbling, hopping or session) for one key. All results of one
    /// window are emitted in the same batch: the one in which the watermark passes <see cref="End"/>.
    /// </summary>
    /// <typeparam name="TKey">The key type.</typeparam>
    /// <typeparam name="TValue">The aggregate type.</typeparam>
    public readonly struct EventWindow<TKey, TValue>
    {
        /// <summary>Creates a window result.</summary>
        public EventWindow(TKey key, TValue value, long start, long end)
        {
            Key = key;
            Value = value;
            Start = start;
            End = end;
        }

        /// <summary>The key.</summary>
        public TKey Key { get; }

        /// <summary>The aggregate of the key's records in the window.</summary>
        public TValue Value { get; }

        /// <summary>The window's start, Unix milliseconds (inclusive).</summary>
        public long Start { get; }

        /// <summary>The window's end, Unix milliseconds (exclusive). For a session: its last record's time plus the gap.</summary>
        public long End { get; }

        /// <inheritdoc />
        public override string ToString() => $"[{Start}, {End}) {Key}: {Value}";
    }
}
