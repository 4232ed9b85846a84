using ClicksPerUser;
using PipelineDsl.Graph;

// Prints the operator graph and the manifest the generator produced for the pipeline.
// (Running it on data arrives with the runtime's driver.)
var definition = ClicksPerUserPipeline.Definition;
Console.WriteLine($"pipeline '{definition.PipelineId}'");
foreach (var op in definition.Operators)
{
    string inputs = op.Inputs.Count == 0 ? "" : " <- " + string.Join(", ", op.Inputs.Select(i => i.Id));
    string state = definition.Manifest.Find(op.Id)?.StateSchema is { } s ? $"  state {s.ValueSchema} ({s.Fingerprint})" : "";
    Console.WriteLine($"  {OperatorManifest.KindName(op.Kind),-14} {op.Id} v{op.Version}{inputs}{state}");
}

if (args.Contains("--manifest")) Console.WriteLine(ClicksPerUserPipeline.ManifestJson);
