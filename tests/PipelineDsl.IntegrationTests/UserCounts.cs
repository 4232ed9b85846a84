using System.Globalization;

namespace PipelineDsl.IntegrationTests;

/// <summary>What the main job's output says about each user: the largest running total its sink wrote (lines "user,clicks,lastSeenMs").</summary>
internal static class UserCounts
{
    public static Dictionary<string, long> FromOutput(string outputDirectory)
    {
        var totals = new Dictionary<string, long>();
        foreach (string file in Directory.GetFiles(outputDirectory, "part-*.txt"))
        {
            foreach (string line in File.ReadLines(file))
            {
                var f = line.Split(',');
                long clicks = long.Parse(f[1], CultureInfo.InvariantCulture);
                if (!totals.TryGetValue(f[0], out long had) || clicks > had) totals[f[0]] = clicks;
            }
        }

        return totals;
    }
}
