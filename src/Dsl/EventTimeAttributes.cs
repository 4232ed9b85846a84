using System;

namespace PipelineDsl
{
    /// <summary>
    /// Declares the event time of a stream and its watermark (Spark's <c>withWatermark</c>), on a
    /// <c>static partial</c> method returning <see cref="Stream{T}"/>. Records pass through unchanged. The watermark
    /// after a batch is the largest event time seen so far minus <see cref="MaxOutOfOrdernessMs"/>; event-time
    /// operators downstream fire the windows that end at or before it. A record older than the watermark of the
    /// previous batch is late: event-time operators drop it and count it in <c>BatchProgress.LateRecords</c>.
    /// When every source upstream is bounded and read to its end, the watermark moves to the end of time.
    /// </summary>
    /// <example><code>[Watermark("timed", From = "events", Time = nameof(Event.DateTime), MaxOutOfOrdernessMs = 4000)]
    /// public static partial Stream&lt;Event&gt; Timed();</code></example>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class WatermarkAttribute : StageAttribute
    {
        /// <summary>Declares a watermark stage with a stable id.</summary>
        public WatermarkAttribute(string id) : base(id) { }

        /// <summary>The <c>long</c> property or field of the record that holds its event time (Unix milliseconds).</summary>
        public string? Time { get; set; }

        /// <summary>How far (ms) behind the newest event time a record may arrive and still count (0 or more).</summary>
        public long MaxOutOfOrdernessMs { get; set; }
    }

    /// <summary>
    /// Event-time tumbling or hopping windows by key, aligned to the Unix epoch: <c>static T M(T a, T b)</c>,
    /// associative, combines a key's records in a window. Tumbling when <see cref="SlideMs"/> is 0 or equal to
    /// <see cref="SizeMs"/>. The output type is <see cref="EventWindow{TKey, TValue}"/>; each window's results are
    /// emitted once, all in the batch whose watermark reaches the window's end, and its state is then removed.
    /// Needs a <see cref="WatermarkAttribute">watermark</see> upstream.
    /// </summary>
    /// <remarks>
    /// State is kept per pane of gcd(<see cref="SizeMs"/>, <see cref="SlideMs"/>) ms, as Flink's window slicing
    /// does: a record updates one pane, not each of the SizeMs/SlideMs windows that cover it, and a window combines
    /// its panes in time order when it fires. A function that is also commutative (a sum, a count, a max) gives
    /// the same result as combining the window's records one by one; one that depends on arrival order (keep the
    /// first) sees the records in pane order for hopping windows.
    /// </remarks>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class EventTimeWindowAttribute : KeyedStageAttribute
    {
        /// <summary>Declares an event-time window with a stable id.</summary>
        public EventTimeWindowAttribute(string id) : base(id) { }

        /// <summary>The <c>long</c> property or field of the record that holds its event time (Unix milliseconds).</summary>
        public string? Time { get; set; }

        /// <summary>The window length in milliseconds (1 or more).</summary>
        public long SizeMs { get; set; }

        /// <summary>The distance between window starts in milliseconds; 0 (default) means <see cref="SizeMs"/> (tumbling).</summary>
        public long SlideMs { get; set; }
    }

    /// <summary>
    /// Event-time session windows by key: <c>static T M(T a, T b)</c>, associative. A key's records less than
    /// <see cref="GapMs"/> apart form one session, which ends at its last record's time plus the gap and is
    /// emitted (as <see cref="EventWindow{TKey, TValue}"/>) when the watermark reaches that end.
    /// Needs a <see cref="WatermarkAttribute">watermark</see> upstream.
    /// </summary>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class SessionWindowAttribute : KeyedStageAttribute
    {
        /// <summary>Declares a session window with a stable id.</summary>
        public SessionWindowAttribute(string id) : base(id) { }

        /// <summary>The <c>long</c> property or field of the record that holds its event time (Unix milliseconds).</summary>
        public string? Time { get; set; }

        /// <summary>The inactivity gap in milliseconds (1 or more).</summary>
        public long GapMs { get; set; }
    }

    /// <summary>
    /// Inner join of two streams across batches: <c>static TOut M(TLeft left, TRight right)</c>, called once for
    /// every pair with equal keys, whichever side arrived first; a <c>null</c> result emits nothing. Without
    /// times the join is unbounded: every record stays in state. With <see cref="LeftTime"/> and
    /// <see cref="RightTime"/> it is an interval join: a pair matches when
    /// <c>LeftTime + LowerBoundMs ≤ RightTime ≤ (LeftEndTime ?? LeftTime) + UpperBoundMs</c>, and records leave
    /// state once the watermark shows they can match nothing more (needs a watermark on both inputs).
    /// Both record types are kept in checkpoints, so they must be state contracts or primitives.
    /// </summary>
    [AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
    public sealed class StreamJoinAttribute : OperatorAttribute
    {
        /// <summary>Declares a stream join with a stable id.</summary>
        public StreamJoinAttribute(string id) : base(id) { }

        /// <summary>The id of the left input.</summary>
        public string? Left { get; set; }

        /// <summary>The id of the right input.</summary>
        public string? Right { get; set; }

        /// <summary>The property or field of the left record type that holds the key.</summary>
        public string? LeftKey { get; set; }

        /// <summary>The property or field of the right record type that holds the key.</summary>
        public string? RightKey { get; set; }

        /// <summary>The <c>long</c> event time of a left record (Unix ms); set with <see cref="RightTime"/> for an interval join.</summary>
        public string? LeftTime { get; set; }

        /// <summary>Optional: the <c>long</c> end of a left record's validity (for example an auction's expiry); defaults to <see cref="LeftTime"/>.</summary>
        public string? LeftEndTime { get; set; }

        /// <summary>The <c>long</c> event time of a right record (Unix ms).</summary>
        public string? RightTime { get; set; }

        /// <summary>The earliest right time that matches, relative to the left time (ms, may be negative).</summary>
        public long LowerBoundMs { get; set; }

        /// <summary>The latest right time that matches, relative to the left end time (ms).</summary>
        public long UpperBoundMs { get; set; }
    }
}
