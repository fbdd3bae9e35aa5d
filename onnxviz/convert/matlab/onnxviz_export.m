function onnxFile = onnxviz_export(net, onnxFile, options)
%ONNXVIZ_EXPORT Export a MATLAB image classifier to ONNX the way onnxviz reads it best.
%
%   onnxviz_export(net, "mynet.onnx") writes mynet.onnx with exportONNXNetwork using
%   the options below, and mynet.labels.txt with the class names (one per line) when
%   the network has a classification output.
%
%   onnxviz_export(net, "mynet.onnx", OpsetVersion=13, Labels=false)
%
%   Inputs
%     net       SeriesNetwork, DAGNetwork or dlnetwork with one image input
%               (imageInputLayer). Trained, as returned by trainNetwork/trainnet or
%               imagePretrainedNetwork.
%     onnxFile  Output file name (string or char), e.g. "mynet.onnx".
%
%   Name-value options
%     OpsetVersion  ONNX opset to write (default 13). onnxviz upgrades old opsets
%                   itself, but a recent one keeps BatchNormalization, Pad and Resize in
%                   their current form. Lower it only if your MATLAB release rejects it
%                   (exportONNXNetwork supports opsets 6-14 in recent releases).
%     BatchSize     Leave it [] (default): the batch axis is then symbolic ("BatchSize")
%                   and onnxviz sends perturbation and gradient batches in one call. A
%                   fixed batch of 1 still works, but onnxviz must then run one image at a
%                   time, which makes occlusion/LIME/RISE much slower. (R2022a or newer.)
%     NetworkName   Graph name written in the file (default: the file name).
%     Labels        true (default) to write <name>.labels.txt next to the ONNX file.
%
%   How onnxviz reads MATLAB files
%     * Preprocessing: the imageInputLayer's Normalization ("zerocenter", "zscore",
%       "rescale-*") is exported INSIDE the graph (a Sub/Div on the input). onnxviz
%       therefore feeds MATLAB files raw pixels in [0, 255] (preset "raw"); do not
%       normalize again. If your network has Normalization "none" but was trained on
%       data scaled some other way, pass --preprocess to onnxviz (or stamp the file, below).
%     * Labels: exportONNXNetwork cannot write onnxviz's metadata. Give the labels file
%       to onnxviz (onnxviz ... --labels mynet.labels.txt, or ov.load(path, labels=...)),
%       or stamp them into the file once, from Python:
%           onnxviz convert metadata mynet.onnx --labels mynet.labels.txt
%     * Layers: node names are MATLAB layer names (conv_1, relu_3, ...), which onnxviz
%       lists in `onnxviz inspect` and accepts for --layer.
%     * Scores: a network ending in softmaxLayer is explained on the scores before the
%       softmax (the logits); regression networks (one output) are explained as is.
%     * Old files (IR 3, initializers listed as graph inputs, flattened inputs) are
%       normalized by onnxviz when loaded; nothing to do on the MATLAB side.
%
%   Requires the "Deep Learning Toolbox Converter for ONNX Model Format" support package.
%   See also exportONNXNetwork, imageInputLayer.

arguments
    net
    onnxFile {mustBeTextScalar}
    options.OpsetVersion (1,1) double {mustBeInteger, mustBePositive} = 13
    options.BatchSize double = []
    options.NetworkName {mustBeTextScalar} = ""
    options.Labels (1,1) logical = true
end

onnxFile = string(onnxFile);
[folder, name, ~] = fileparts(onnxFile);
networkName = string(options.NetworkName);
if networkName == ""
    networkName = name;
end

exportArgs = {"OpsetVersion", options.OpsetVersion, "NetworkName", char(networkName)};
if ~isempty(options.BatchSize)
    exportArgs = [exportArgs, {"BatchSize", options.BatchSize}];
end
exportONNXNetwork(net, onnxFile, exportArgs{:});

if options.Labels
    classes = classNames(net);
    if ~isempty(classes)
        labelsFile = fullfile(folder, name + ".labels.txt");
        writelines(string(classes(:)), labelsFile);
        fprintf("onnxviz_export: wrote %s and %s (%d classes)\n", onnxFile, labelsFile, numel(classes));
        return
    end
end
fprintf("onnxviz_export: wrote %s\n", onnxFile);
end

function classes = classNames(net)
%CLASSNAMES Class names of a classification network, or [] when it has none.
classes = [];
if isprop(net, "Layers")
    for k = numel(net.Layers):-1:1
        layer = net.Layers(k);
        if isprop(layer, "Classes") && ~isempty(layer.Classes)
            classes = cellstr(layer.Classes);
            return
        end
    end
end
end
