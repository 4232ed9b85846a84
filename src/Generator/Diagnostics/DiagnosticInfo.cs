using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;
using PipelineDsl.Generator.Model;

namespace PipelineDsl.Generator.Diagnostics
{
    /// <summary>A location as plain values, so that diagnostics can live in cacheable models.</summary>
    internal sealed record LocationInfo(string FilePath, TextSpan Span, LinePositionSpan LineSpan)
    {
        public static LocationInfo? From(Location? location)
        {
            if (location is null || !location.IsInSource) return null;
            var line = location.GetLineSpan();
            return new LocationInfo(location.SourceTree?.FilePath ?? line.Path, location.SourceSpan, line.Span);
        }

        public Location ToLocation() => Location.Create(FilePath, Span, LineSpan);
    }

    /// <summary>A diagnostic as plain values: its descriptor id, location and message arguments.</summary>
    internal sealed record DiagnosticInfo(string Id, LocationInfo? Location, EquatableArray<string> Arguments)
    {
        public static DiagnosticInfo Create(DiagnosticDescriptor descriptor, Location? location, params string[] arguments) =>
            new(descriptor.Id, LocationInfo.From(location), arguments.ToEquatableArray());

        public static DiagnosticInfo Create(DiagnosticDescriptor descriptor, LocationInfo? location, params string[] arguments) =>
            new(descriptor.Id, location, arguments.ToEquatableArray());

        public Diagnostic ToDiagnostic()
        {
            var descriptor = DiagnosticDescriptors.ById(Id);
            object[] args = new object[Arguments.Count];
            for (int i = 0; i < args.Length; i++) args[i] = Arguments[i];
            return Diagnostic.Create(descriptor, Location?.ToLocation() ?? Microsoft.CodeAnalysis.Location.None, args);
        }
    }
}
