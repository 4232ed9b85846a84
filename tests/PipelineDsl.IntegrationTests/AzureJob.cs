using System.Globalization;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using PipelineDsl.Azure.Testing;

namespace PipelineDsl.IntegrationTests;

/// <summary>What the tests of the main job on Azurite share: its environment, its input with the uninterrupted reference output, and its blob output.</summary>
internal static class AzureJob
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(5);

    /// <summary>The job's environment: the account on <paramref name="azurite"/>, and a crash point when given.</summary>
    public static Dictionary<string, string> Env(AzuriteServer azurite, string? crashAt = null)
    {
        var env = new Dictionary<string, string> { ["AZURE_STORAGE_CONNECTION_STRING"] = azurite.ConnectionString };
        if (crashAt is not null) env["PIPELINEDSL_CRASH_AT"] = crashAt;
        return env;
    }

    /// <summary>
    /// Generates <paramref name="records"/> clicks into <c>input</c> under <paramref name="dir"/>, and the uninterrupted
    /// output of the same job with a local checkpoint into <c>ref-output</c>; returns the input folder.
    /// </summary>
    public static string Prepare(TempDir dir, int records, int users, int maxRecordsPerPartition)
    {
        string input = dir.Sub("input");
        SampleProcess.RunToCompletion(new[]
        {
            "generate", "--records", records.ToString(CultureInfo.InvariantCulture), "--files", "8", "--users", users.ToString(CultureInfo.InvariantCulture), "--output", input,
        }, Long);
        SampleProcess.RunToCompletion(new[]
        {
            "--input", input, "--checkpoint", dir.Sub("ref-checkpoint"), "--output", dir.Sub("ref-output"), "--bounded",
            "--max-records-per-partition", maxRecordsPerPartition.ToString(CultureInfo.InvariantCulture), "--checkpoint-interval", "5",
        }, Long);
        return input;
    }

    /// <summary>The object-store sink's output (blobs clicks-per-user-output/part-N.txt of <paramref name="container"/>), downloaded into a folder to compare with the reference files.</summary>
    public static async Task<string> DownloadOutputAsync(AzuriteServer azurite, string container, TempDir dir)
    {
        string folder = dir.Sub("downloaded-" + container);
        Directory.CreateDirectory(folder);
        var client = new BlobContainerClient(azurite.ConnectionString, container, new BlobClientOptions(BlobClientOptions.ServiceVersion.V2026_06_06));
        await foreach (var blob in client.GetBlobsAsync(BlobTraits.None, BlobStates.None, "clicks-per-user-output/", default))
            await client.GetBlobClient(blob.Name).DownloadToAsync(Path.Combine(folder, Path.GetFileName(blob.Name)));
        return folder;
    }
}
