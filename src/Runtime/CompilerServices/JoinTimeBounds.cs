using System;
using System.ComponentModel;

namespace PipelineDsl.CompilerServices;

/// <summary>How a stream join bounds its state in event time (a join built without bounds keeps every record).</summary>
/// <typeparam name="TLeft">The left record type.</typeparam>
/// <typeparam name="TRight">The right record type.</typeparam>
/// <param name="LeftTime">The left record's event time.</param>
/// <param name="LeftEndTime">The end of the left record's validity (defaults to its event time).</param>
/// <param name="RightTime">The right record's event time.</param>
/// <param name="LowerBoundMs">A pair matches when <c>LeftTime + LowerBoundMs ≤ RightTime</c> ...</param>
/// <param name="UpperBoundMs">... and <c>RightTime ≤ LeftEndTime + UpperBoundMs</c>.</param>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed record JoinTimeBounds<TLeft, TRight>(Func<TLeft, long> LeftTime, Func<TLeft, long>? LeftEndTime, Func<TRight, long> RightTime, long LowerBoundMs, long UpperBoundMs);
