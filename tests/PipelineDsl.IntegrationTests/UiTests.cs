using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace PipelineDsl.IntegrationTests;

/// <summary>
/// The streaming UI in a real browser (Debian's Chromium, headless, driven by Playwright) against the main job run as a
/// service: the charts draw and grow as batches arrive, the operator graph shows the pipeline, a click on a batch opens
/// its phases and ranges. The screenshot is kept as a test artifact (<c>artifacts/test-results/dashboard.png</c>).
/// </summary>
[Trait(ProcessLane.Trait, ProcessLane.Value)]
[Collection(ProcessLane.Name)]
public sealed class UiTests : IDisposable
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(2);
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string Chromium() =>
        Environment.GetEnvironmentVariable("PIPELINEDSL_CHROMIUM") is { Length: > 0 } named ? named
        : File.Exists("/usr/bin/chromium") ? "/usr/bin/chromium"
        : throw new InvalidOperationException("The UI test needs Chromium: run scripts/install-chromium.sh (Debian's chromium package) or set PIPELINEDSL_CHROMIUM.");

    [Fact]
    public async Task The_dashboard_shows_live_charts_the_graph_and_a_batch_detail()
    {
        string input = _dir.Sub("input");
        SampleProcess.RunToCompletion(new[] { "generate", "--records", "3000", "--files", "2", "--users", "40", "--output", input }, Long);
        var (job, url) = await SampleProcess.StartServeAsync(new[]
        {
            "--input", input, "--checkpoint", _dir.Sub("checkpoint"), "--output", _dir.Sub("output"),
            "--Pipeline:BatchInterval=00:00:00.250", "--Pipeline:MaxRecordsPerPartition=100",
        }, Long);
        using var _ = job;

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = Chromium(), Headless = true, Args = new[] { "--no-sandbox" } });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1400, Height = 1300 } });
        await page.GotoAsync(url + "/");

        // The charts draw, then grow with the next batches (15 batches of input at 100 records per file per batch).
        await page.WaitForFunctionAsync("() => Number(document.body.dataset.batches) >= 3", null, new PageWaitForFunctionOptions { Timeout = 60_000 });
        int before = int.Parse(await page.GetAttributeAsync("#chart-input path.line", "data-points") ?? "0");
        await page.WaitForFunctionAsync($"() => Number(document.querySelector('#chart-processing path.line')?.dataset.points) > {before}", null, new PageWaitForFunctionOptions { Timeout = 60_000 });
        Assert.Equal("Running", await page.InnerTextAsync("#phase"));
        Assert.Equal("new checkpoint", await page.InnerTextAsync("#recovery"));
        Assert.Contains("checkpoint " + _dir.Sub("checkpoint"), await page.InnerTextAsync("#checkpoint"));
        // The checkpoint's files and who holds its lock (this service's process).
        await page.WaitForFunctionAsync("() => document.getElementById('checkpoint-files').textContent.includes('last commit file')", null, new PageWaitForFunctionOptions { Timeout = 30_000 });
        Assert.Matches(new Regex($@"offsets up to batch \d+ · last commit file \d+ · snapshots .* · lock: .*process {job.Id} on"), await page.InnerTextAsync("#checkpoint-files"));
        Assert.Equal(5, await page.Locator("#graph .op").CountAsync()); // clicks, humans, parse, per-user, totals
        Assert.Contains("update-state v1", await page.InnerTextAsync("[data-operator='per-user']"));
        Assert.True(await page.Locator("#histogram-processing rect.bar").CountAsync() > 0);

        // A batch's detail: its phases, each file's range of positions, its sink and state.
        await page.ClickAsync("#batches tbody tr:last-child");
        string detail = await page.InnerTextAsync("#detail-text");
        Assert.Contains("phases (ms):", detail);
        Assert.Contains("execute", detail);
        Assert.Matches(new Regex(@"partition clicks-000\.csv: positions \[\d+, \d+\), lag \d+"), detail);
        Assert.Contains("totals:", detail);
        Assert.Matches(new Regex(@"per-user: \d+ keys, \d+ updated, delta \d+(\.\d)? (B|KiB), newest snapshot "), detail);

        string root = typeof(UiTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "RepositoryRoot").Value!;
        string shot = Path.Combine(root, "artifacts", "test-results", "dashboard.png");
        Directory.CreateDirectory(Path.GetDirectoryName(shot)!);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = shot, FullPage = true });
        Assert.True(new FileInfo(shot).Length > 10_000, "the screenshot is nearly empty");

        job.SendSigterm();
        Assert.True(job.WaitForExit(Long) == 0, job.Output);

        // Restarted on the same checkpoint: the page says what the recovery did.
        var (again, againUrl) = await SampleProcess.StartServeAsync(new[]
        {
            "--input", input, "--checkpoint", _dir.Sub("checkpoint"), "--output", _dir.Sub("output"),
            "--Pipeline:BatchInterval=00:00:00.250", "--Pipeline:MaxRecordsPerPartition=100",
        }, Long);
        using var __ = again;
        await page.GotoAsync(againUrl + "/");
        await page.WaitForFunctionAsync("() => document.getElementById('recovery').textContent.startsWith('recovered')", null, new PageWaitForFunctionOptions { Timeout = 60_000 });
        Assert.Matches(new Regex(@"^recovered after batch \d+: snapshot \d+, \d+ deltas, 0 replayed, in \d\d:\d\d:\d\d"), await page.InnerTextAsync("#recovery"));
        again.SendSigterm();
        Assert.True(again.WaitForExit(Long) == 0, again.Output);
    }
}
