namespace DistributedBackprop.Core;

/// <summary>
/// An error the user caused and can fix: bad flags, bad data files, a foreign model file.
/// The message names the input and what is wrong in one line; the command line turns it into exit code 2.
/// </summary>
public sealed class DistbpInputException(string message) : Exception(message);
