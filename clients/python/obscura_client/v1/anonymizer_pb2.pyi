from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ObjectClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OBJECT_CLASS_UNSPECIFIED: _ClassVar[ObjectClass]
    OBJECT_CLASS_LICENSE_PLATE: _ClassVar[ObjectClass]
    OBJECT_CLASS_PERSON: _ClassVar[ObjectClass]
    OBJECT_CLASS_FACE: _ClassVar[ObjectClass]
    OBJECT_CLASS_VEHICLE: _ClassVar[ObjectClass]

class ZoneKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ZONE_KIND_UNSPECIFIED: _ClassVar[ZoneKind]
    ZONE_KIND_PRIVACY: _ClassVar[ZoneKind]
    ZONE_KIND_IGNORE: _ClassVar[ZoneKind]

class Method(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METHOD_UNSPECIFIED: _ClassVar[Method]
    METHOD_BLUR: _ClassVar[Method]
    METHOD_PIXELATE: _ClassVar[Method]
    METHOD_BLACKEN: _ClassVar[Method]
    METHOD_DETECT: _ClassVar[Method]

class SaveMask(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAVE_MASK_UNSPECIFIED: _ClassVar[SaveMask]
    SAVE_MASK_ALL: _ClassVar[SaveMask]
    SAVE_MASK_INSTANCE: _ClassVar[SaveMask]
    SAVE_MASK_BINARY: _ClassVar[SaveMask]
    SAVE_MASK_NONE: _ClassVar[SaveMask]

class MaskFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MASK_FORMAT_UNSPECIFIED: _ClassVar[MaskFormat]
    MASK_FORMAT_PNG: _ClassVar[MaskFormat]
    MASK_FORMAT_RAW: _ClassVar[MaskFormat]

class MaskEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MASK_ENCODING_UNSPECIFIED: _ClassVar[MaskEncoding]
    MASK_ENCODING_CELANTUR: _ClassVar[MaskEncoding]
    MASK_ENCODING_CELANTUR_V26: _ClassVar[MaskEncoding]

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_UNSPECIFIED: _ClassVar[ImageFormat]
    IMAGE_FORMAT_JPEG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_PNG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_WEBP: _ClassVar[ImageFormat]
    IMAGE_FORMAT_BMP: _ClassVar[ImageFormat]
    IMAGE_FORMAT_RAW: _ClassVar[ImageFormat]

class PixelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIXEL_FORMAT_UNSPECIFIED: _ClassVar[PixelFormat]
    PIXEL_FORMAT_BGR24: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGB24: _ClassVar[PixelFormat]
    PIXEL_FORMAT_NV12: _ClassVar[PixelFormat]
    PIXEL_FORMAT_GRAY8: _ClassVar[PixelFormat]
OBJECT_CLASS_UNSPECIFIED: ObjectClass
OBJECT_CLASS_LICENSE_PLATE: ObjectClass
OBJECT_CLASS_PERSON: ObjectClass
OBJECT_CLASS_FACE: ObjectClass
OBJECT_CLASS_VEHICLE: ObjectClass
ZONE_KIND_UNSPECIFIED: ZoneKind
ZONE_KIND_PRIVACY: ZoneKind
ZONE_KIND_IGNORE: ZoneKind
METHOD_UNSPECIFIED: Method
METHOD_BLUR: Method
METHOD_PIXELATE: Method
METHOD_BLACKEN: Method
METHOD_DETECT: Method
SAVE_MASK_UNSPECIFIED: SaveMask
SAVE_MASK_ALL: SaveMask
SAVE_MASK_INSTANCE: SaveMask
SAVE_MASK_BINARY: SaveMask
SAVE_MASK_NONE: SaveMask
MASK_FORMAT_UNSPECIFIED: MaskFormat
MASK_FORMAT_PNG: MaskFormat
MASK_FORMAT_RAW: MaskFormat
MASK_ENCODING_UNSPECIFIED: MaskEncoding
MASK_ENCODING_CELANTUR: MaskEncoding
MASK_ENCODING_CELANTUR_V26: MaskEncoding
IMAGE_FORMAT_UNSPECIFIED: ImageFormat
IMAGE_FORMAT_JPEG: ImageFormat
IMAGE_FORMAT_PNG: ImageFormat
IMAGE_FORMAT_WEBP: ImageFormat
IMAGE_FORMAT_BMP: ImageFormat
IMAGE_FORMAT_RAW: ImageFormat
PIXEL_FORMAT_UNSPECIFIED: PixelFormat
PIXEL_FORMAT_BGR24: PixelFormat
PIXEL_FORMAT_RGB24: PixelFormat
PIXEL_FORMAT_NV12: PixelFormat
PIXEL_FORMAT_GRAY8: PixelFormat

class Zone(_message.Message):
    __slots__ = ("kind", "points", "method")
    KIND_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    kind: ZoneKind
    points: _containers.RepeatedScalarFieldContainer[float]
    method: Method
    def __init__(self, kind: _Optional[_Union[ZoneKind, str]] = ..., points: _Optional[_Iterable[float]] = ..., method: _Optional[_Union[Method, str]] = ...) -> None: ...

class RawFrame(_message.Message):
    __slots__ = ("width", "height", "format", "data")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    format: PixelFormat
    data: bytes
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., format: _Optional[_Union[PixelFormat, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Color(_message.Message):
    __slots__ = ("r", "g", "b")
    R_FIELD_NUMBER: _ClassVar[int]
    G_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    r: int
    g: int
    b: int
    def __init__(self, r: _Optional[int] = ..., g: _Optional[int] = ..., b: _Optional[int] = ...) -> None: ...

class ClassOptions(_message.Message):
    __slots__ = ("object_class", "method", "threshold", "enlarge")
    OBJECT_CLASS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ENLARGE_FIELD_NUMBER: _ClassVar[int]
    object_class: ObjectClass
    method: Method
    threshold: float
    enlarge: float
    def __init__(self, object_class: _Optional[_Union[ObjectClass, str]] = ..., method: _Optional[_Union[Method, str]] = ..., threshold: _Optional[float] = ..., enlarge: _Optional[float] = ...) -> None: ...

class Options(_message.Message):
    __slots__ = ("classes", "bbox", "save_mask", "mask_scale", "mask_encoding", "output_format", "quality", "fill_color", "track_hold", "detect_every", "zones", "mask_format")
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    SAVE_MASK_FIELD_NUMBER: _ClassVar[int]
    MASK_SCALE_FIELD_NUMBER: _ClassVar[int]
    MASK_ENCODING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    FILL_COLOR_FIELD_NUMBER: _ClassVar[int]
    TRACK_HOLD_FIELD_NUMBER: _ClassVar[int]
    DETECT_EVERY_FIELD_NUMBER: _ClassVar[int]
    ZONES_FIELD_NUMBER: _ClassVar[int]
    MASK_FORMAT_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedCompositeFieldContainer[ClassOptions]
    bbox: bool
    save_mask: SaveMask
    mask_scale: int
    mask_encoding: MaskEncoding
    output_format: ImageFormat
    quality: int
    fill_color: Color
    track_hold: int
    detect_every: int
    zones: _containers.RepeatedCompositeFieldContainer[Zone]
    mask_format: MaskFormat
    def __init__(self, classes: _Optional[_Iterable[_Union[ClassOptions, _Mapping]]] = ..., bbox: _Optional[bool] = ..., save_mask: _Optional[_Union[SaveMask, str]] = ..., mask_scale: _Optional[int] = ..., mask_encoding: _Optional[_Union[MaskEncoding, str]] = ..., output_format: _Optional[_Union[ImageFormat, str]] = ..., quality: _Optional[int] = ..., fill_color: _Optional[_Union[Color, _Mapping]] = ..., track_hold: _Optional[int] = ..., detect_every: _Optional[int] = ..., zones: _Optional[_Iterable[_Union[Zone, _Mapping]]] = ..., mask_format: _Optional[_Union[MaskFormat, str]] = ...) -> None: ...

class AnonymizeRequest(_message.Message):
    __slots__ = ("encoded", "raw", "options", "frame_index", "timestamp", "name", "folder")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    raw: RawFrame
    options: Options
    frame_index: int
    timestamp: float
    name: str
    folder: str
    def __init__(self, encoded: _Optional[bytes] = ..., raw: _Optional[_Union[RawFrame, _Mapping]] = ..., options: _Optional[_Union[Options, _Mapping]] = ..., frame_index: _Optional[int] = ..., timestamp: _Optional[float] = ..., name: _Optional[str] = ..., folder: _Optional[str] = ...) -> None: ...

class Detection(_message.Message):
    __slots__ = ("id", "parent_image", "offset", "bbox", "score", "is_anonymized", "type_label", "type", "color", "source", "track_id", "covered_in_mask")
    ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_IMAGE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    IS_ANONYMIZED_FIELD_NUMBER: _ClassVar[int]
    TYPE_LABEL_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    COVERED_IN_MASK_FIELD_NUMBER: _ClassVar[int]
    id: int
    parent_image: str
    offset: _containers.RepeatedScalarFieldContainer[int]
    bbox: _containers.RepeatedScalarFieldContainer[int]
    score: float
    is_anonymized: bool
    type_label: str
    type: int
    color: _containers.RepeatedScalarFieldContainer[int]
    source: str
    track_id: int
    covered_in_mask: bool
    def __init__(self, id: _Optional[int] = ..., parent_image: _Optional[str] = ..., offset: _Optional[_Iterable[int]] = ..., bbox: _Optional[_Iterable[int]] = ..., score: _Optional[float] = ..., is_anonymized: _Optional[bool] = ..., type_label: _Optional[str] = ..., type: _Optional[int] = ..., color: _Optional[_Iterable[int]] = ..., source: _Optional[str] = ..., track_id: _Optional[int] = ..., covered_in_mask: _Optional[bool] = ...) -> None: ...

class Metadata(_message.Message):
    __slots__ = ("id", "filename", "folder", "size", "duration", "detections", "instance_ids_repeat", "detect_every", "zones")
    ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_IDS_REPEAT_FIELD_NUMBER: _ClassVar[int]
    DETECT_EVERY_FIELD_NUMBER: _ClassVar[int]
    ZONES_FIELD_NUMBER: _ClassVar[int]
    id: str
    filename: str
    folder: str
    size: _containers.RepeatedScalarFieldContainer[int]
    duration: float
    detections: _containers.RepeatedCompositeFieldContainer[Detection]
    instance_ids_repeat: _containers.RepeatedScalarFieldContainer[str]
    detect_every: int
    zones: _containers.RepeatedCompositeFieldContainer[Zone]
    def __init__(self, id: _Optional[str] = ..., filename: _Optional[str] = ..., folder: _Optional[str] = ..., size: _Optional[_Iterable[int]] = ..., duration: _Optional[float] = ..., detections: _Optional[_Iterable[_Union[Detection, _Mapping]]] = ..., instance_ids_repeat: _Optional[_Iterable[str]] = ..., detect_every: _Optional[int] = ..., zones: _Optional[_Iterable[_Union[Zone, _Mapping]]] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("decode", "detect", "anonymize", "encode", "total", "models")
    class ModelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    DECODE_FIELD_NUMBER: _ClassVar[int]
    DETECT_FIELD_NUMBER: _ClassVar[int]
    ANONYMIZE_FIELD_NUMBER: _ClassVar[int]
    ENCODE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    decode: float
    detect: float
    anonymize: float
    encode: float
    total: float
    models: _containers.ScalarMap[str, float]
    def __init__(self, decode: _Optional[float] = ..., detect: _Optional[float] = ..., anonymize: _Optional[float] = ..., encode: _Optional[float] = ..., total: _Optional[float] = ..., models: _Optional[_Mapping[str, float]] = ...) -> None: ...

class FrameError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class AnonymizeResponse(_message.Message):
    __slots__ = ("frame_index", "timestamp", "encoded", "raw", "format", "binary_mask", "instance_mask", "metadata", "timings", "error", "mask_width", "mask_height", "mask_format")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    BINARY_MASK_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_MASK_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MASK_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MASK_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MASK_FORMAT_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    timestamp: float
    encoded: bytes
    raw: RawFrame
    format: ImageFormat
    binary_mask: bytes
    instance_mask: bytes
    metadata: Metadata
    timings: Timings
    error: FrameError
    mask_width: int
    mask_height: int
    mask_format: MaskFormat
    def __init__(self, frame_index: _Optional[int] = ..., timestamp: _Optional[float] = ..., encoded: _Optional[bytes] = ..., raw: _Optional[_Union[RawFrame, _Mapping]] = ..., format: _Optional[_Union[ImageFormat, str]] = ..., binary_mask: _Optional[bytes] = ..., instance_mask: _Optional[bytes] = ..., metadata: _Optional[_Union[Metadata, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., error: _Optional[_Union[FrameError, _Mapping]] = ..., mask_width: _Optional[int] = ..., mask_height: _Optional[int] = ..., mask_format: _Optional[_Union[MaskFormat, str]] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "classes", "family", "precision", "device", "source")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    classes: _containers.RepeatedScalarFieldContainer[str]
    family: str
    precision: str
    device: str
    source: str
    def __init__(self, name: _Optional[str] = ..., classes: _Optional[_Iterable[str]] = ..., family: _Optional[str] = ..., precision: _Optional[str] = ..., device: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_pixels", "max_message_bytes", "max_inflight", "stream_depth")
    MAX_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_INFLIGHT_FIELD_NUMBER: _ClassVar[int]
    STREAM_DEPTH_FIELD_NUMBER: _ClassVar[int]
    max_pixels: int
    max_message_bytes: int
    max_inflight: int
    stream_depth: int
    def __init__(self, max_pixels: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_inflight: _Optional[int] = ..., stream_depth: _Optional[int] = ...) -> None: ...

class GetInfoResponse(_message.Message):
    __slots__ = ("version", "models", "classes", "methods", "pixel_formats", "image_formats", "mask_encodings", "limits", "runtime")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    PIXEL_FORMATS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMATS_FIELD_NUMBER: _ClassVar[int]
    MASK_ENCODINGS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    version: str
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    classes: _containers.RepeatedScalarFieldContainer[str]
    methods: _containers.RepeatedScalarFieldContainer[str]
    pixel_formats: _containers.RepeatedScalarFieldContainer[str]
    image_formats: _containers.RepeatedScalarFieldContainer[str]
    mask_encodings: _containers.RepeatedScalarFieldContainer[str]
    limits: Limits
    runtime: str
    def __init__(self, version: _Optional[str] = ..., models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., classes: _Optional[_Iterable[str]] = ..., methods: _Optional[_Iterable[str]] = ..., pixel_formats: _Optional[_Iterable[str]] = ..., image_formats: _Optional[_Iterable[str]] = ..., mask_encodings: _Optional[_Iterable[str]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., runtime: _Optional[str] = ...) -> None: ...
