namespace DistributedBackprop.Core.Export;

/// <summary>
/// Builds one ONNX model: a graph of nodes over named values, float32 initializers, typed inputs and outputs, written
/// as an ONNX ModelProto. Only the messages and fields a feed-forward network needs; the field numbers are onnx.proto's.
/// </summary>
public sealed class OnnxGraph(string name)
{
    /// <summary>ONNX IR version 7 is the one that goes with opset 13.</summary>
    public const long IrVersion = 7;
    public const long OpsetVersion = 13;

    private readonly List<ProtobufWriter> _nodes = [];
    private readonly List<ProtobufWriter> _initializers = [];
    private readonly List<ProtobufWriter> _inputs = [];
    private readonly List<ProtobufWriter> _outputs = [];

    /// <summary>A float32 input of shape [batch, width]; the batch dimension is symbolic.</summary>
    public string Input(string value, string batchDimension, int width, string doc)
    {
        _inputs.Add(ValueInfo(value, ElementType.Float, batchDimension, width, doc));
        return value;
    }

    /// <summary>Declares <paramref name="value"/> a graph output of shape [batch] or [batch, width].</summary>
    public void Output(string value, ElementType elementType, string batchDimension, int? width, string doc) =>
        _outputs.Add(ValueInfo(value, elementType, batchDimension, width, doc));

    /// <summary>A float32 constant (initializer), row-major.</summary>
    public string Constant(string value, ReadOnlySpan<float> data, params long[] dims)
    {
        var tensor = new ProtobufWriter();
        foreach (var dim in dims)
        {
            tensor.Int(TensorProto.Dims, dim);
        }
        tensor.Int(TensorProto.DataType, (int)ElementType.Float)
            .String(TensorProto.Name, value)
            .Floats(TensorProto.RawData, data);
        _initializers.Add(tensor);
        return value;
    }

    /// <summary>A node of the default ONNX domain; its one output is named <paramref name="output"/> (also the node's name).</summary>
    public string Node(string opType, string output, string[] inputs, params Attribute[] attributes)
    {
        var node = new ProtobufWriter();
        foreach (var input in inputs)
        {
            node.String(NodeProto.Input, input);
        }
        node.String(NodeProto.Output, output)
            .String(NodeProto.Name, output)
            .String(NodeProto.OpType, opType);
        foreach (var attribute in attributes)
        {
            var proto = new ProtobufWriter().String(AttributeProto.Name, attribute.Name);
            if (attribute.Float is { } f)
            {
                proto.Int(AttributeProto.Type, AttributeProto.TypeFloat).Float(AttributeProto.F, f);
            }
            else
            {
                proto.Int(AttributeProto.Type, AttributeProto.TypeInt).Int(AttributeProto.I, attribute.Int);
            }
            node.Message(NodeProto.Attribute, proto);
        }
        _nodes.Add(node);
        return output;
    }

    /// <summary>The whole model file, with <paramref name="metadata"/> as its metadata_props.</summary>
    public byte[] ToModel(string producer, string doc, IEnumerable<KeyValuePair<string, string>> metadata)
    {
        var graph = new ProtobufWriter();
        foreach (var node in _nodes)
        {
            graph.Message(GraphProto.Node, node);
        }
        graph.String(GraphProto.Name, name);
        foreach (var initializer in _initializers)
        {
            graph.Message(GraphProto.Initializer, initializer);
        }
        graph.String(GraphProto.DocString, doc);
        foreach (var input in _inputs)
        {
            graph.Message(GraphProto.Input, input);
        }
        foreach (var output in _outputs)
        {
            graph.Message(GraphProto.Output, output);
        }

        var model = new ProtobufWriter()
            .Int(ModelProto.IrVersion, IrVersion)
            .String(ModelProto.ProducerName, producer)
            .String(ModelProto.DocString, doc)
            .Message(ModelProto.Graph, graph)
            .Message(ModelProto.OpsetImport, new ProtobufWriter()
                .String(OperatorSetIdProto.Domain, "")
                .Int(OperatorSetIdProto.Version, OpsetVersion));
        foreach (var (key, value) in metadata)
        {
            model.Message(ModelProto.MetadataProps, new ProtobufWriter()
                .String(StringStringEntryProto.Key, key)
                .String(StringStringEntryProto.Value, value));
        }
        return model.ToArray();
    }

    private static ProtobufWriter ValueInfo(string value, ElementType elementType, string batchDimension, int? width, string doc)
    {
        var shape = new ProtobufWriter()
            .Message(TensorShapeProto.Dim, new ProtobufWriter().String(TensorShapeProto.DimParam, batchDimension));
        if (width is { } w)
        {
            shape.Message(TensorShapeProto.Dim, new ProtobufWriter().Int(TensorShapeProto.DimValue, w));
        }
        var tensorType = new ProtobufWriter()
            .Int(TypeProto.TensorElemType, (int)elementType)
            .Message(TypeProto.TensorShape, shape);
        return new ProtobufWriter()
            .String(ValueInfoProto.Name, value)
            .Message(ValueInfoProto.Type, new ProtobufWriter().Message(TypeProto.TensorType, tensorType))
            .String(ValueInfoProto.DocString, doc);
    }

    /// <summary>TensorProto.DataType values used here.</summary>
    public enum ElementType
    {
        Float = 1,
        Int64 = 7,
    }

    /// <summary>A node attribute: a float (<see cref="Float"/> set) or an int.</summary>
    public readonly record struct Attribute(string Name, float? Float, long Int)
    {
        public static Attribute Of(string name, float value) => new(name, value, 0);

        public static Attribute Of(string name, long value) => new(name, null, value);
    }

    // Field numbers and enum values from onnx.proto.
    private static class ModelProto
    {
        public const int IrVersion = 1, ProducerName = 2, DocString = 6, Graph = 7, OpsetImport = 8, MetadataProps = 14;
    }

    private static class OperatorSetIdProto
    {
        public const int Domain = 1, Version = 2;
    }

    private static class StringStringEntryProto
    {
        public const int Key = 1, Value = 2;
    }

    private static class GraphProto
    {
        public const int Node = 1, Name = 2, Initializer = 5, DocString = 10, Input = 11, Output = 12;
    }

    private static class NodeProto
    {
        public const int Input = 1, Output = 2, Name = 3, OpType = 4, Attribute = 5;
    }

    private static class AttributeProto
    {
        public const int Name = 1, F = 2, I = 3, Type = 20;
        public const int TypeFloat = 1, TypeInt = 2;
    }

    private static class TensorProto
    {
        public const int Dims = 1, DataType = 2, Name = 8, RawData = 9;
    }

    private static class ValueInfoProto
    {
        public const int Name = 1, Type = 2, DocString = 3;
    }

    /// <summary>TypeProto.tensor_type, and TypeProto.Tensor's elem_type and shape.</summary>
    private static class TypeProto
    {
        public const int TensorType = 1, TensorElemType = 1, TensorShape = 2;
    }

    /// <summary>TensorShapeProto.dim, and TensorShapeProto.Dimension's dim_value and dim_param.</summary>
    private static class TensorShapeProto
    {
        public const int Dim = 1, DimValue = 1, DimParam = 2;
    }
}
