using System;

namespace PipelineDsl
{
    /// <summary>
    /// A typed handle to a source declared in a pipeline class. Bind a connector to it at run time.
    /// </summary>
    /// <typeparam name="T">The record type the source produces.</typeparam>
    public sealed class Source<T>
    {
        /// <summary>Creates a handle; generated code calls this, user code rarely needs to.</summary>
        public Source(string pipelineId, string id)
        {
            PipelineId = pipelineId ?? throw new ArgumentNullException(nameof(pipelineId));
            Id = id ?? throw new ArgumentNullException(nameof(id));
        }

        /// <summary>The id of the pipeline that declares the source.</summary>
        public string PipelineId { get; }

        /// <summary>The stable id of the source.</summary>
        public string Id { get; }

        /// <inheritdoc />
        public override string ToString() => $"source '{Id}' of pipeline '{PipelineId}'";
    }

    /// <summary>
    /// A typed handle to a sink declared in a pipeline class. Bind a connector to it at run time.
    /// </summary>
    /// <typeparam name="T">The record type the sink receives.</typeparam>
    public sealed class Sink<T>
    {
        /// <summary>Creates a handle; generated code calls this, user code rarely needs to.</summary>
        public Sink(string pipelineId, string id)
        {
            PipelineId = pipelineId ?? throw new ArgumentNullException(nameof(pipelineId));
            Id = id ?? throw new ArgumentNullException(nameof(id));
        }

        /// <summary>The id of the pipeline that declares the sink.</summary>
        public string PipelineId { get; }

        /// <summary>The stable id of the sink.</summary>
        public string Id { get; }

        /// <inheritdoc />
        public override string ToString() => $"sink '{Id}' of pipeline '{PipelineId}'";
    }

    /// <summary>A typed handle to an intermediate element (such as a union) of a pipeline.</summary>
    /// <typeparam name="T">The record type the element produces.</typeparam>
    public sealed class Stream<T>
    {
        /// <summary>Creates a handle; generated code calls this, user code rarely needs to.</summary>
        public Stream(string pipelineId, string id)
        {
            PipelineId = pipelineId ?? throw new ArgumentNullException(nameof(pipelineId));
            Id = id ?? throw new ArgumentNullException(nameof(id));
        }

        /// <summary>The id of the pipeline that declares the element.</summary>
        public string PipelineId { get; }

        /// <summary>The stable id of the element.</summary>
        public string Id { get; }

        /// <inheritdoc />
        public override string ToString() => $"element '{Id}' of pipeline '{PipelineId}'";
    }
}
