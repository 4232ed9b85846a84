using System;

namespace PipelineDsl
{
    /// <summary>
    /// A batch's processing time: when the runtime planned the batch, as logged with its input ranges in the checkpoint.
    /// A <c>[Map]</c> method that takes a second parameter of this type receives it for every record (as Spark's
    /// <c>current_timestamp()</c> is the batch's time in a micro-batch). Every record of a batch sees the same value, and a
    /// batch replayed after a crash sees the value logged with its plan, so processing-time logic (windows on it, stamps)
    /// gives the same output on recovery. The runtime's clock is <c>PipelineRunnerOptions.Clock</c>.
    /// </summary>
    public readonly struct BatchTime : IEquatable<BatchTime>
    {
        /// <summary>A batch time of <paramref name="unixMilliseconds"/>.</summary>
        public BatchTime(long unixMilliseconds) => UnixMilliseconds = unixMilliseconds;

        /// <summary>Milliseconds since the Unix epoch (UTC).</summary>
        public long UnixMilliseconds { get; }

        /// <summary>The time as a <see cref="DateTimeOffset"/> (UTC).</summary>
        public DateTimeOffset Value => DateTimeOffset.FromUnixTimeMilliseconds(UnixMilliseconds);

        /// <inheritdoc />
        public bool Equals(BatchTime other) => UnixMilliseconds == other.UnixMilliseconds;

        /// <inheritdoc />
        public override bool Equals(object? obj) => obj is BatchTime other && Equals(other);

        /// <inheritdoc />
        public override int GetHashCode() => UnixMilliseconds.GetHashCode();

        /// <inheritdoc />
        public override string ToString() => Value.ToString("O", System.Globalization.CultureInfo.InvariantCulture);

        /// <summary>Equal times.</summary>
        public static bool operator ==(BatchTime left, BatchTime right) => left.Equals(right);

        /// <summary>Different times.</summary>
        public static bool operator !=(BatchTime left, BatchTime right) => !left.Equals(right);
    }
}
