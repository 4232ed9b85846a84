using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Net.Http;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using Azure;
using Azure.Storage.Blobs;

namespace PipelineDsl.Azure;

/// <summary>
/// The one owner of how PipelineDsl talks to a Blob Storage container (the checkpoint store and the sink alike):
/// the client settings, the container name rule, which failures are transient, and the retry loop with its
/// outage limit.
/// </summary>
internal sealed class BlobContainerGate
{
    private readonly BlobContainerClient _container;
    private readonly Func<string> _location;
    private readonly string _role;
    private readonly TimeSpan _outageLimit;
    private readonly Func<string, Exception, Exception> _outage;
    private Task? _containerReady;

    public BlobContainerGate(BlobContainerClient container, Func<string> location, string role, TimeSpan outageLimit, Func<string, Exception, Exception> outage)
    {
        _container = container;
        _location = location;
        _role = role;
        _outageLimit = outageLimit;
        _outage = outage;
    }

    /// <summary>
    /// A client that retries nothing itself (the gate owns retries and their limit) and speaks service version
    /// 2026-06-06: the newest that Azurite 3.37, the emulator the tests run on, accepts. Azure serves older
    /// versions indefinitely, and the SDK's default moves with every release.
    /// </summary>
    public static BlobContainerClient Client(string connectionString, string containerName, TimeSpan requestTimeout)
    {
        CheckContainerName(containerName);
        var options = new BlobClientOptions(BlobClientOptions.ServiceVersion.V2026_06_06);
        options.Retry.MaxRetries = 0;
        options.Retry.NetworkTimeout = requestTimeout;
        return new BlobContainerClient(connectionString, containerName, options);
    }

    /// <summary>Azure's rule for container names, checked before any request so that a bad name is one clear error.</summary>
    public static void CheckContainerName(string name)
    {
        bool valid = name.Length is >= 3 and <= 63
                     && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-')
                     && name[0] != '-' && name[^1] != '-' && !name.Contains("--", StringComparison.Ordinal);
        if (!valid && name != "$root")
            throw new ArgumentException($"'{name}' is not a valid Azure Blob Storage container name: use 3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit.");
    }

    /// <summary>
    /// Runs <paramref name="operation"/> (after creating the container once, if missing), retrying transient
    /// failures with backoff (0.1 s doubling to 2 s) until the outage limit has passed; other failures are
    /// reported at once as an <see cref="IOException"/> naming the container and what was being done.
    /// </summary>
    public async Task<T> RunAsync<T>(string what, Func<CancellationToken, Task<T>> operation, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var delay = TimeSpan.FromMilliseconds(100);
        int attempts = 0;
        while (true)
        {
            attempts++;
            try
            {
                if (_containerReady is null || _containerReady.IsFaulted) _containerReady = _container.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
                await _containerReady.ConfigureAwait(false);
                return await operation(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (IsTransient(e) && !cancellationToken.IsCancellationRequested)
            {
                var elapsed = Stopwatch.GetElapsedTime(started);
                if (elapsed >= _outageLimit)
                {
                    throw _outage(
                        $"The {_role} '{_location()}' did not answer for {elapsed.TotalSeconds:F0} s while {what} ({attempts} attempts; last error: {Describe(e)}; limit {_outageLimit.TotalSeconds:F0} s).", e);
                }

                // The last wait ends at the limit, for one more attempt there.
                var remaining = _outageLimit - elapsed;
                await Task.Delay(delay < remaining ? delay : remaining, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
            catch (RequestFailedException e) when (e.Status is 401 or 403)
            {
                throw new IOException($"The {_role} '{_location()}' refused {what}: {Describe(e)}. Check the connection string or credential and its permissions on the container.", e);
            }
            catch (RequestFailedException e)
            {
                throw new IOException($"The {_role} '{_location()}' refused {what}: {Describe(e)}.", e);
            }
        }
    }

    public static string Describe(Exception e) => e switch
    {
        RequestFailedException r => $"HTTP {r.Status} {r.ErrorCode}: {r.Message.Split('\n')[0]}",
        AggregateException a when a.InnerExceptions.Count > 0 => Describe(a.InnerExceptions[^1]),
        _ => $"{e.GetType().Name}: {e.Message}",
    };

    /// <summary>Network failures, timeouts, throttling and server errors: the store may answer again.</summary>
    public static bool IsTransient(Exception e) => e switch
    {
        RequestFailedException r => r.Status is 0 or 408 or 429 or >= 500 || (r.InnerException is { } inner && IsTransient(inner)),
        HttpRequestException or SocketException or IOException or TimeoutException => true,
        OperationCanceledException => true, // a request's own timeout (the caller's cancellation is excluded by the caller)
        AggregateException a => a.InnerExceptions.All(IsTransient),
        _ => false,
    };
}
