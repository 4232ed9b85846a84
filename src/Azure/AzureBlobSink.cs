using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Azure;
using Azure.Storage.Blobs;
using PipelineDsl.Sinks;

namespace PipelineDsl.Azure;

/// <summary>Settings of an <see cref="AzureBlobSink{T}"/>.</summary>
public sealed class AzureBlobSinkOptions
{
    /// <summary>How long one batch's write keeps retrying while the store does not answer before the batch fails (it runs again on restart). Default 60 s.</summary>
    public TimeSpan OutageLimit { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The time one request may take before it counts as failed and is retried. Default 30 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    internal void Validate()
    {
        if (OutageLimit <= TimeSpan.Zero) throw new ArgumentException($"AzureBlobSinkOptions.OutageLimit is {OutageLimit}: it must be positive.");
        if (RequestTimeout <= TimeSpan.Zero) throw new ArgumentException($"AzureBlobSinkOptions.RequestTimeout is {RequestTimeout}: it must be positive.");
    }
}

/// <summary>
/// Exactly-once output on Azure Blob Storage, the object-store counterpart of <see cref="FileSink{T}"/>: batch N
/// becomes one blob, <c>&lt;prefix&gt;part-N.txt</c> (N in ten digits), one formatted record per line, written whole
/// in one request. A batch that runs again after a crash has the same records (its ranges are logged before any
/// output exists), so it writes the same bytes under the same name: readers never see a partial batch or a batch
/// twice. A batch with no records writes no blob.
/// </summary>
/// <typeparam name="T">The record type.</typeparam>
public sealed class AzureBlobSink<T> : ISinkConnector<T>
{
    private readonly BlobContainerClient _container;
    private readonly string _prefix;
    private readonly Func<T, string> _format;
    private readonly BlobContainerGate _gate;

    /// <summary>A sink writing into <paramref name="container"/> (created if missing) under <paramref name="prefix"/> (for example <c>output/</c>).</summary>
    public AzureBlobSink(BlobContainerClient container, string prefix, Func<T, string> format, AzureBlobSinkOptions? options = null)
    {
        _container = container ?? throw new ArgumentNullException(nameof(container));
        BlobContainerGate.CheckContainerName(container.Name);
        _format = format ?? throw new ArgumentNullException(nameof(format));
        prefix ??= "";
        if (prefix.Length > 0)
        {
            Checkpointing.CheckpointNames.Check(prefix.TrimEnd('/'), nameof(prefix));
            prefix = prefix.TrimEnd('/') + "/";
        }

        _prefix = prefix;
        options ??= new AzureBlobSinkOptions();
        options.Validate();
        _gate = new BlobContainerGate(container, () => Location, "sink", options.OutageLimit,
            (message, inner) => new IOException(message + " The batch is not committed and runs again on restart.", inner));
    }

    /// <summary>A sink from a storage account's connection string (retries owned by the sink; service version 2026-06-06, as for the checkpoint store).</summary>
    public static AzureBlobSink<T> FromConnectionString(string connectionString, string containerName, string prefix, Func<T, string> format, AzureBlobSinkOptions? options = null)
    {
        options ??= new AzureBlobSinkOptions();
        return new AzureBlobSink<T>(BlobContainerGate.Client(connectionString, containerName, options.RequestTimeout), prefix, format, options);
    }

    /// <summary>Where the output goes: the container's address and the prefix.</summary>
    public string Location => _container.Uri.AbsoluteUri.TrimEnd('/') + "/" + _prefix;

    /// <summary>The blob name of a batch's output, under the prefix.</summary>
    public static string BlobNameOf(long batchId) => FileSink<T>.FileNameOf(batchId);

    /// <inheritdoc />
    public Task WriteBatchAsync(long batchId, IReadOnlyList<T> records, CancellationToken cancellationToken)
    {
        if (records is null) throw new ArgumentNullException(nameof(records));
        if (records.Count == 0) return Task.CompletedTask;
        var text = new StringBuilder(records.Count * 32);
        foreach (var record in records) text.Append(_format(record)).Append('\n');
        var content = BinaryData.FromBytes(Encoding.UTF8.GetBytes(text.ToString()));
        var blob = _container.GetBlobClient(_prefix + BlobNameOf(batchId));
        return _gate.RunAsync($"writing batch {batchId.ToString(CultureInfo.InvariantCulture)}", async ct =>
        {
            await blob.UploadAsync(content, overwrite: true, ct).ConfigureAwait(false);
            return true;
        }, cancellationToken);
    }
}
