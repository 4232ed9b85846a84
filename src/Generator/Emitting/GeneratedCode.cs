namespace PipelineDsl.Generator.Emitting
{
    /// <summary>
    /// The <c>[GeneratedCode]</c> attribute put on every generated member and type (not on the user's partial
    /// class, which is the user's code): analyzers and coverage tools then skip what the user did not write.
    /// </summary>
    internal static class GeneratedCode
    {
        /// <summary>The generator's assembly version, as emitted: a new PipelineDsl version changes it.</summary>
        public static readonly string Version = typeof(GeneratedCode).Assembly.GetName().Version?.ToString() ?? "0.0.0.0";

        public static readonly string Attribute = $"[global::System.CodeDom.Compiler.GeneratedCodeAttribute(\"PipelineDsl.Generator\", \"{Version}\")]";
    }
}
