using System;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Threading;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using PipelineDsl.Checkpointing;

namespace PipelineDsl.Hosting.Web;

/// <summary>The streaming UI of the host's pipelines and the JSON API it reads.</summary>
public static class PipelineDashboard
{
    private static readonly Lazy<byte[]> Page = new(() =>
    {
        using var stream = typeof(PipelineDashboard).Assembly.GetManifestResourceStream("PipelineDsl.Hosting.Web.dashboard.html")
                           ?? throw new InvalidOperationException("The dashboard page is missing from PipelineDsl.Hosting.Web.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    });

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter() } };

    /// <summary>
    /// Maps the UI at <paramref name="prefix"/> (<c>/</c> by default) and its API: <c>api/pipelines</c> (every pipeline's
    /// status, checkpoint and operator graph), <c>api/checkpoint?pipeline=ID</c> (the checkpoint's files as its store lists
    /// them: newest offsets and commit, snapshots, and who holds the lock) and <c>api/progress?pipeline=ID&amp;after=N</c> (the progress records of
    /// its latest batches after batch N, in the JSON of <see cref="BatchProgress.ToJson"/>). Needs
    /// <see cref="PipelineServiceCollectionExtensions.AddPipeline"/>. Where it listens is the host's: keep it on loopback
    /// (<c>--urls http://127.0.0.1:PORT</c>) unless a proxy with authentication stands in front; the UI has none.
    /// </summary>
    public static IEndpointRouteBuilder MapPipelineDashboard(this IEndpointRouteBuilder endpoints, string prefix = "/")
    {
        if (endpoints is null) throw new ArgumentNullException(nameof(endpoints));
        string root = "/" + (prefix ?? "").Trim('/');
        string Path(string rest) => root == "/" ? "/" + rest : root + "/" + rest;

        endpoints.MapGet(root, () => Results.Bytes(Page.Value, "text/html; charset=utf-8"));
        endpoints.MapGet(Path("api/pipelines"), (PipelineRegistry registry) => Results.Json(registry.PipelineIds.Select(id =>
        {
            var definition = registry.DefinitionOf(id);
            return new
            {
                id,
                status = registry.StatusOf(id),
                checkpoint = registry.CheckpointLocationOf(id),
                operators = definition.Manifest.Operators.Select(o => new { o.Id, o.Kind, o.Version, o.Inputs, state = o.StateSchema?.ValueSchema }),
            };
        }), Json));
        endpoints.MapGet(Path("api/checkpoint"), async (PipelineRegistry registry, string pipeline, CancellationToken cancellationToken) =>
        {
            if (!registry.PipelineIds.Contains(pipeline)) return Results.NotFound($"No pipeline '{pipeline}'; there are: {string.Join(", ", registry.PipelineIds)}.");
            if (registry.CheckpointStoreOf(pipeline) is not { } store) return Results.Json(new { location = (string?)null, problem = "not started yet" }, Json);
            try
            {
                // Read-only, without the lock: what it lists may be a batch behind the running pipeline.
                var reader = await CheckpointReader.OpenAsync(store, cancellationToken).ConfigureAwait(false);
                return Results.Json(new
                {
                    location = store.Location,
                    checkpointId = reader.CheckpointId,
                    lockHolder = await store.DescribeLockHolderAsync(cancellationToken).ConfigureAwait(false),
                    newestOffsets = reader.OffsetBatches.Count > 0 ? reader.OffsetBatches[^1] : (long?)null,
                    newestCommit = reader.CommitBatches.Count > 0 ? reader.CommitBatches[^1] : (long?)null,
                    snapshots = reader.SnapshotBatches,
                }, Json);
            }
            catch (Exception e) when (e is IOException or CheckpointException)
            {
                // A checkpoint not created yet, or one the store cannot read now: say so, the page keeps polling.
                return Results.Json(new { location = store.Location, problem = e.Message }, Json);
            }
        });
        endpoints.MapGet(Path("api/progress"), (PipelineRegistry registry, string pipeline, long? after) =>
        {
            if (!registry.PipelineIds.Contains(pipeline)) return Results.NotFound($"No pipeline '{pipeline}'; there are: {string.Join(", ", registry.PipelineIds)}.");
            var text = new StringBuilder("[");
            foreach (var batch in registry.RecentBatches(pipeline).Where(b => after is null || b.BatchId > after))
                text.Append(text.Length > 1 ? "," : "").Append(batch.ToJson());
            return Results.Text(text.Append(']').ToString(), "application/json");
        });
        return endpoints;
    }
}
