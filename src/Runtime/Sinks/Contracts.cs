using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl.Sinks;

/// <summary>
/// Receives each batch's records for one sink. The runtime may deliver the same batch again after a
/// crash (with the same records when its plan was logged), so an implementation must be idempotent per
/// <c>batchId</c>: writing batch N twice must leave the same result as writing it once.
/// </summary>
/// <typeparam name="T">The record type.</typeparam>
public interface ISinkConnector<in T>
{
    /// <summary>Writes the records of batch <paramref name="batchId"/>; returns when they are durable.</summary>
    Task WriteBatchAsync(long batchId, IReadOnlyList<T> records, CancellationToken cancellationToken);
}
