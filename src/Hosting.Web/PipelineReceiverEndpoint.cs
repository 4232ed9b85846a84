using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using PipelineDsl.Sources;

namespace PipelineDsl.Hosting.Web;

/// <summary>An HTTP ingestion endpoint in front of an <see cref="HttpReceiverSource{T}"/>.</summary>
public static class PipelineReceiverEndpoint
{
    /// <summary>The largest request body accepted (16 MiB); a larger one is refused with 413.</summary>
    public const int MaxBodyBytes = 16 << 20;

    /// <summary>The request header that carries a request's idempotency key.</summary>
    public const string IdempotencyKeyHeader = "Idempotency-Key";

    /// <summary>
    /// Maps <c>POST <paramref name="pattern"/></c>: the body is lines of text (JSON lines, CSV, ...; empty lines are
    /// skipped), logged as one request under its <c>Idempotency-Key</c> header (optional, 1-200 characters). Answers:
    /// <c>200</c> with <c>{"position", "records", "duplicate"}</c> once the request is durable (or was already logged under
    /// that key); <c>503</c> with <c>Retry-After</c> when the receiver's backlog is full; <c>507</c> when the log's disk is
    /// full (nothing acknowledged is lost; retry later); <c>400</c> for an empty body or a bad key; <c>413</c> above
    /// <see cref="MaxBodyBytes"/>. A client that retries every request it got no <c>200</c> for, with the same key, has each
    /// of its records in the output exactly once.
    /// </summary>
    public static IEndpointConventionBuilder MapPipelineReceiver<T>(this IEndpointRouteBuilder endpoints, string pattern, HttpReceiverSource<T> receiver)
    {
        if (endpoints is null) throw new ArgumentNullException(nameof(endpoints));
        if (receiver is null) throw new ArgumentNullException(nameof(receiver));
        return endpoints.MapPost(pattern, async (HttpContext context) =>
        {
            var request = context.Request;
            string? key = request.Headers[IdempotencyKeyHeader].FirstOrDefault();
            if (key is { Length: 0 or > 200 }) return Results.BadRequest($"The {IdempotencyKeyHeader} header has 1 to 200 characters; this one has {key.Length}.");
            if (request.ContentLength > MaxBodyBytes) return Results.StatusCode(StatusCodes.Status413PayloadTooLarge);

            var body = new MemoryStream();
            var buffer = new byte[81920];
            int read;
            while ((read = await request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
            {
                if (body.Length + read > MaxBodyBytes) return Results.StatusCode(StatusCodes.Status413PayloadTooLarge);
                body.Write(buffer, 0, read);
            }

            var lines = new List<string>();
            foreach (string line in Encoding.UTF8.GetString(body.GetBuffer(), 0, (int)body.Length).Split('\n'))
            {
                string trimmed = line.EndsWith('\r') ? line[..^1] : line;
                if (trimmed.Length > 0) lines.Add(trimmed);
            }

            if (lines.Count == 0) return Results.BadRequest("The request has no lines: send one record per line.");
            IngestResult result;
            try
            {
                result = await receiver.IngestAsync(lines, key, context.RequestAborted);
            }
            catch (IOException e)
            {
                return Results.Problem(e.Message, statusCode: StatusCodes.Status507InsufficientStorage);
            }

            if (result.Outcome == IngestOutcome.Backlogged)
            {
                context.Response.Headers.RetryAfter = "1";
                return Results.Problem("The receiver's backlog is full: processing is behind. Send the request again after Retry-After seconds.", statusCode: StatusCodes.Status503ServiceUnavailable);
            }

            return Results.Json(new { position = result.Position, records = lines.Count, duplicate = result.Outcome == IngestOutcome.Duplicate });
        });
    }
}
