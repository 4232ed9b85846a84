using System.Runtime.CompilerServices;

namespace PipelineDsl.Tests.Shared;

/// <summary>
/// Runs this whole suite on the state backend named by <c>PIPELINEDSL_TEST_STATE_BACKEND</c>: unset or
/// <c>in-memory</c> for the default, <c>rocksdb</c> for <see cref="RocksDbStateBackend"/> (in a temporary directory).
/// scripts/test.sh runs the suites that include this file once with each, so every state, crash, format and upgrade
/// test holds on both.
/// </summary>
internal static class StateBackendSelection
{
    public static string Name { get; private set; } = "in-memory";

    [ModuleInitializer]
    internal static void Select()
    {
        string? chosen = Environment.GetEnvironmentVariable("PIPELINEDSL_TEST_STATE_BACKEND");
        switch (chosen)
        {
            case null or "" or "in-memory":
                return;
            case "rocksdb":
                string directory = Path.Combine(Path.GetTempPath(), $"pipelinedsl-rocksdb-tests-{Environment.ProcessId}");
                StateBackend.Default = new RocksDbStateBackend(directory);
                Name = "rocksdb";
                AppDomain.CurrentDomain.ProcessExit += (_, _) =>
                {
                    try
                    {
                        Directory.Delete(directory, recursive: true);
                    }
                    catch (IOException)
                    {
                    }
                };
                return;
            default:
                throw new InvalidOperationException($"PIPELINEDSL_TEST_STATE_BACKEND is '{chosen}': use 'in-memory' or 'rocksdb'.");
        }
    }
}
