namespace DistributedBackprop.Core;

/// <summary>
/// An input a person gave that cannot be used — an option's value, a data, model or checkpoint file — with what is wrong
/// and how to fix it, in one line. The message names the input. An option's error names it as the library spells it (a
/// <see cref="Training.TrainingOptions"/> property, in <see cref="Option"/>) and says the rest in <see cref="Problem"/>,
/// so that each host words it for its users: the command line names the flag and exits with code 2.
/// </summary>
public sealed class DistbpInputException : Exception
{
    /// <summary>An input error whose message names the input itself (a file's role, such as "data: 'x.csv' is empty").</summary>
    public DistbpInputException(string message) : base(message)
    {
        Problem = message;
    }

    /// <summary>An option's value is wrong: <paramref name="option"/> is its property name, <paramref name="problem"/> the rest.</summary>
    public DistbpInputException(string option, string problem) : base($"{option}: {problem}")
    {
        Option = option;
        Problem = problem;
    }

    /// <summary>The option whose value is wrong (a property name such as <c>LearningRate</c>); null for other inputs.</summary>
    public string? Option { get; }

    /// <summary>What is wrong and the fix, without the option's name.</summary>
    public string Problem { get; }
}
