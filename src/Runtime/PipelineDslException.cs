using System;
using System.Collections.Generic;

namespace PipelineDsl;

/// <summary>
/// The base of every exception PipelineDsl throws on purpose: catch it to report a failed run as one line
/// (its <see cref="Exception.Message"/> names the file, record, option or operator and says what to do).
/// </summary>
public abstract class PipelineDslException : Exception
{
    /// <summary>Creates the exception.</summary>
    protected PipelineDslException(string message, Exception? inner = null) : base(message, inner) { }

    /// <summary>
    /// True when running again later, unchanged, can succeed (a lock held by another process, a broker or
    /// store that is down); false when something must be changed first (damaged files, an incompatible build,
    /// a bad record, a bug in an operator).
    /// </summary>
    public abstract bool IsTransient { get; }
}

/// <summary>
/// The family of checkpoint problems: the checkpoint cannot be opened, does not belong to this pipeline,
/// cannot be restored by this build, or holds a damaged file. The samples and the CLI report any of them as
/// one line and exit code 1.
/// </summary>
public abstract class CheckpointException : PipelineDslException
{
    /// <summary>Creates the exception.</summary>
    protected CheckpointException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>Thrown when a checkpoint was written by a build whose state this build cannot read; lists each operator and why.</summary>
public sealed class CheckpointIncompatibleException : CheckpointException
{
    /// <summary>Creates the exception.</summary>
    public CheckpointIncompatibleException(string message, IReadOnlyList<string> operators) : base(message) => Operators = operators;

    /// <inheritdoc />
    public override bool IsTransient => false;

    /// <summary>One line per operator that blocks the restore.</summary>
    public IReadOnlyList<string> Operators { get; }
}
