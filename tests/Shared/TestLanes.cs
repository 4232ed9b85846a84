// Linked into every test project (tests/Directory.Build.props).

namespace PipelineDsl.Tests.Shared;

/// <summary>
/// The process lane: tests that start child processes, kill them with SIGKILL or rebuild projects. They carry
/// the trait <c>Lane=Process</c> and run one at a time in their own collection, so that their timing (a kill
/// that must land mid-run) does not depend on what else the machine runs. The fast inner loop skips them:
/// <c>dotnet test --filter "Lane!=Process"</c>.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessLane
{
    public const string Name = "process lane";
    public const string Trait = "Lane";
    public const string Value = "Process";
}

/// <summary>Seeded randomness whose seed is printed with the test's output and can be replaced to explore.</summary>
public static class TestRandom
{
    /// <summary>The environment variable that replaces every test's default seed.</summary>
    public const string SeedVariable = "PIPELINEDSL_TEST_SEED";

    /// <summary>
    /// A <see cref="Random"/> seeded with <paramref name="defaultSeed"/> (or <c>PIPELINEDSL_TEST_SEED</c>), the
    /// seed written to <paramref name="log"/> so that a failure names it.
    /// </summary>
    public static Random Create(int defaultSeed, Xunit.Abstractions.ITestOutputHelper log, string? what = null)
    {
        int seed = Environment.GetEnvironmentVariable(SeedVariable) is { } text && int.TryParse(text, out int given) ? given : defaultSeed;
        log.WriteLine($"random seed {seed}{(what is null ? "" : " for " + what)} (replay with {SeedVariable}={seed})");
        return new Random(seed);
    }
}
