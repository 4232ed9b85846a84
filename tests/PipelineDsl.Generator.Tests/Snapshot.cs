using System.Runtime.CompilerServices;

namespace PipelineDsl.Generator.Tests;

/// <summary>
/// Compares text with a checked-in <c>*.verified.cs</c> file, exactly. Set
/// <c>PIPELINEDSL_UPDATE_SNAPSHOTS=1</c> to rewrite the files on purpose; otherwise a difference fails
/// the test and the new text is written next to it as <c>*.received.cs</c> for review.
/// </summary>
internal static class Snapshot
{
    public static void Verify(string actual, string name, [CallerFilePath] string callerPath = "")
    {
        string directory = Path.Combine(Path.GetDirectoryName(callerPath)!, "Snapshots");
        string verified = Path.Combine(directory, name + ".verified.cs");
        string received = Path.Combine(directory, name + ".received.cs");
        if (Environment.GetEnvironmentVariable("PIPELINEDSL_UPDATE_SNAPSHOTS") == "1")
        {
            Directory.CreateDirectory(directory);
            File.WriteAllText(verified, actual);
            if (File.Exists(received)) File.Delete(received);
            return;
        }

        if (!File.Exists(verified))
        {
            File.WriteAllText(received, actual);
            Assert.Fail($"No snapshot {verified}. Review {received} and, if right, run the tests with PIPELINEDSL_UPDATE_SNAPSHOTS=1.");
        }

        string expected = File.ReadAllText(verified);
        if (expected != actual)
        {
            File.WriteAllText(received, actual);
            Assert.Fail($"Generated source differs from {verified}; see {received}. If the change is intended, run the tests with PIPELINEDSL_UPDATE_SNAPSHOTS=1.\n" + FirstDifference(expected, actual));
        }

        if (File.Exists(received)) File.Delete(received);
    }

    private static string FirstDifference(string expected, string actual)
    {
        var e = expected.Split('\n');
        var a = actual.Split('\n');
        for (int i = 0; i < Math.Max(e.Length, a.Length); i++)
        {
            string el = i < e.Length ? e[i] : "<end>";
            string al = i < a.Length ? a[i] : "<end>";
            if (el != al) return $"line {i + 1}:\n  expected: {el}\n  actual:   {al}";
        }

        return "";
    }
}
