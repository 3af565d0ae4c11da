"""Where torchvision's pretrained weights live and what their outputs mean: the download
address of each supported builder name's default weights (``weights="DEFAULT"``), the input
sizes of its evaluation transform, and the category names (torchvision's ``_meta``: ImageNet,
COCO with its ``"N/A"`` gaps, COCO person keypoints, PASCAL VOC).
"""
from __future__ import annotations

_BASE = "https://download.pytorch.org/models/"
# name -> torchvision's download URL of the name's DEFAULT weights.
URLS = {
    "alexnet": _BASE + "alexnet-owt-7be5be79.pth",
    "vgg11": _BASE + "vgg11-8a719046.pth",
    "vgg11_bn": _BASE + "vgg11_bn-6002323d.pth",
    "vgg13": _BASE + "vgg13-19584684.pth",
    "vgg13_bn": _BASE + "vgg13_bn-abd245e5.pth",
    "vgg16": _BASE + "vgg16-397923af.pth",
    "vgg16_bn": _BASE + "vgg16_bn-6c64b313.pth",
    "vgg19": _BASE + "vgg19-dcbb9e9d.pth",
    "vgg19_bn": _BASE + "vgg19_bn-c79401a0.pth",
    "resnet18": _BASE + "resnet18-f37072fd.pth",
    "resnet34": _BASE + "resnet34-b627a593.pth",
    "resnet50": _BASE + "resnet50-11ad3fa6.pth",
    "resnet101": _BASE + "resnet101-cd907fc2.pth",
    "resnet152": _BASE + "resnet152-f82ba261.pth",
    "resnext50_32x4d": _BASE + "resnext50_32x4d-1a0047aa.pth",
    "resnext101_32x8d": _BASE + "resnext101_32x8d-110c445d.pth",
    "resnext101_64x4d": _BASE + "resnext101_64x4d-173b62eb.pth",
    "wide_resnet50_2": _BASE + "wide_resnet50_2-9ba9bcbe.pth",
    "wide_resnet101_2": _BASE + "wide_resnet101_2-d733dc28.pth",
    "densenet121": _BASE + "densenet121-a639ec97.pth",
    "densenet161": _BASE + "densenet161-8d451a50.pth",
    "densenet169": _BASE + "densenet169-b2777c0a.pth",
    "densenet201": _BASE + "densenet201-c1103571.pth",
    "squeezenet1_0": _BASE + "squeezenet1_0-b66bff10.pth",
    "squeezenet1_1": _BASE + "squeezenet1_1-b8a52dc0.pth",
    "googlenet": _BASE + "googlenet-1378be20.pth",
    "inception_v3": _BASE + "inception_v3_google-0cc3c7bd.pth",
    "mobilenet_v2": _BASE + "mobilenet_v2-7ebf99e0.pth",
    "mobilenet_v3_large": _BASE + "mobilenet_v3_large-5c1a4163.pth",
    "mobilenet_v3_small": _BASE + "mobilenet_v3_small-047dcff4.pth",
    "shufflenet_v2_x0_5": _BASE + "shufflenetv2_x0.5-f707e7126e.pth",
    "shufflenet_v2_x1_0": _BASE + "shufflenetv2_x1-5666bf0f80.pth",
    "shufflenet_v2_x1_5": _BASE + "shufflenetv2_x1_5-3c479a10.pth",
    "shufflenet_v2_x2_0": _BASE + "shufflenetv2_x2_0-8be3c8ee.pth",
    "fasterrcnn_resnet50_fpn": _BASE + "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
    "maskrcnn_resnet50_fpn": _BASE + "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
    "keypointrcnn_resnet50_fpn": _BASE + "keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
    "fcn_resnet50": _BASE + "fcn_resnet50_coco-1167a1af.pth",
    "fcn_resnet101": _BASE + "fcn_resnet101_coco-7ecb50ca.pth",
    "deeplabv3_resnet50": _BASE + "deeplabv3_resnet50_coco-cd0a2569.pth",
    "deeplabv3_resnet101": _BASE + "deeplabv3_resnet101_coco-586e9e4e.pth",
}

# Evaluation transform of a classifier's DEFAULT weights: (resize of the shorter side, centre
# crop), bilinear; (256, 224) unless listed.
_V2 = ("resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
       "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2", "mobilenet_v2",
       "mobilenet_v3_large", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0")
CLASSIFIER_SIZES = {**{n: (232, 224) for n in _V2}, "inception_v3": (342, 299)}
# Shorter side the segmentation weights are evaluated at (torchvision's SemanticSegmentation).
SEGMENTATION_RESIZE = 520


def classifier_sizes(name: str) -> tuple[int, int]:
    """``(resize, crop)`` of torchvision's evaluation transform of ``name``'s DEFAULT weights."""
    return CLASSIFIER_SIZES.get(name, (256, 224))


IMAGENET_CATEGORIES = (
    "tench", "goldfish", "great white shark", "tiger shark", "hammerhead", "electric ray",
    "stingray", "cock", "hen", "ostrich", "brambling", "goldfinch", "house finch", "junco",
    "indigo bunting", "robin", "bulbul", "jay", "magpie", "chickadee", "water ouzel", "kite",
    "bald eagle", "vulture", "great grey owl", "European fire salamander", "common newt", "eft",
    "spotted salamander", "axolotl", "bullfrog", "tree frog", "tailed frog", "loggerhead",
    "leatherback turtle", "mud turtle", "terrapin", "box turtle", "banded gecko", "common iguana",
    "American chameleon", "whiptail", "agama", "frilled lizard", "alligator lizard",
    "Gila monster", "green lizard", "African chameleon", "Komodo dragon", "African crocodile",
    "American alligator", "triceratops", "thunder snake", "ringneck snake", "hognose snake",
    "green snake", "king snake", "garter snake", "water snake", "vine snake", "night snake",
    "boa constrictor", "rock python", "Indian cobra", "green mamba", "sea snake", "horned viper",
    "diamondback", "sidewinder", "trilobite", "harvestman", "scorpion",
    "black and gold garden spider", "barn spider", "garden spider", "black widow", "tarantula",
    "wolf spider", "tick", "centipede", "black grouse", "ptarmigan", "ruffed grouse",
    "prairie chicken", "peacock", "quail", "partridge", "African grey", "macaw",
    "sulphur-crested cockatoo", "lorikeet", "coucal", "bee eater", "hornbill", "hummingbird",
    "jacamar", "toucan", "drake", "red-breasted merganser", "goose", "black swan", "tusker",
    "echidna", "platypus", "wallaby", "koala", "wombat", "jellyfish", "sea anemone", "brain coral",
    "flatworm", "nematode", "conch", "snail", "slug", "sea slug", "chiton", "chambered nautilus",
    "Dungeness crab", "rock crab", "fiddler crab", "king crab", "American lobster",
    "spiny lobster", "crayfish", "hermit crab", "isopod", "white stork", "black stork",
    "spoonbill", "flamingo", "little blue heron", "American egret", "bittern", "crane bird",
    "limpkin", "European gallinule", "American coot", "bustard", "ruddy turnstone",
    "red-backed sandpiper", "redshank", "dowitcher", "oystercatcher", "pelican", "king penguin",
    "albatross", "grey whale", "killer whale", "dugong", "sea lion", "Chihuahua",
    "Japanese spaniel", "Maltese dog", "Pekinese", "Shih-Tzu", "Blenheim spaniel", "papillon",
    "toy terrier", "Rhodesian ridgeback", "Afghan hound", "basset", "beagle", "bloodhound",
    "bluetick", "black-and-tan coonhound", "Walker hound", "English foxhound", "redbone", "borzoi",
    "Irish wolfhound", "Italian greyhound", "whippet", "Ibizan hound", "Norwegian elkhound",
    "otterhound", "Saluki", "Scottish deerhound", "Weimaraner", "Staffordshire bullterrier",
    "American Staffordshire terrier", "Bedlington terrier", "Border terrier", "Kerry blue terrier",
    "Irish terrier", "Norfolk terrier", "Norwich terrier", "Yorkshire terrier",
    "wire-haired fox terrier", "Lakeland terrier", "Sealyham terrier", "Airedale", "cairn",
    "Australian terrier", "Dandie Dinmont", "Boston bull", "miniature schnauzer",
    "giant schnauzer", "standard schnauzer", "Scotch terrier", "Tibetan terrier", "silky terrier",
    "soft-coated wheaten terrier", "West Highland white terrier", "Lhasa", "flat-coated retriever",
    "curly-coated retriever", "golden retriever", "Labrador retriever", "Chesapeake Bay retriever",
    "German short-haired pointer", "vizsla", "English setter", "Irish setter", "Gordon setter",
    "Brittany spaniel", "clumber", "English springer", "Welsh springer spaniel", "cocker spaniel",
    "Sussex spaniel", "Irish water spaniel", "kuvasz", "schipperke", "groenendael", "malinois",
    "briard", "kelpie", "komondor", "Old English sheepdog", "Shetland sheepdog", "collie",
    "Border collie", "Bouvier des Flandres", "Rottweiler", "German shepherd", "Doberman",
    "miniature pinscher", "Greater Swiss Mountain dog", "Bernese mountain dog", "Appenzeller",
    "EntleBucher", "boxer", "bull mastiff", "Tibetan mastiff", "French bulldog", "Great Dane",
    "Saint Bernard", "Eskimo dog", "malamute", "Siberian husky", "dalmatian", "affenpinscher",
    "basenji", "pug", "Leonberg", "Newfoundland", "Great Pyrenees", "Samoyed", "Pomeranian",
    "chow", "keeshond", "Brabancon griffon", "Pembroke", "Cardigan", "toy poodle",
    "miniature poodle", "standard poodle", "Mexican hairless", "timber wolf", "white wolf",
    "red wolf", "coyote", "dingo", "dhole", "African hunting dog", "hyena", "red fox", "kit fox",
    "Arctic fox", "grey fox", "tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat",
    "cougar", "lynx", "leopard", "snow leopard", "jaguar", "lion", "tiger", "cheetah",
    "brown bear", "American black bear", "ice bear", "sloth bear", "mongoose", "meerkat",
    "tiger beetle", "ladybug", "ground beetle", "long-horned beetle", "leaf beetle", "dung beetle",
    "rhinoceros beetle", "weevil", "fly", "bee", "ant", "grasshopper", "cricket", "walking stick",
    "cockroach", "mantis", "cicada", "leafhopper", "lacewing", "dragonfly", "damselfly", "admiral",
    "ringlet", "monarch", "cabbage butterfly", "sulphur butterfly", "lycaenid", "starfish",
    "sea urchin", "sea cucumber", "wood rabbit", "hare", "Angora", "hamster", "porcupine",
    "fox squirrel", "marmot", "beaver", "guinea pig", "sorrel", "zebra", "hog", "wild boar",
    "warthog", "hippopotamus", "ox", "water buffalo", "bison", "ram", "bighorn", "ibex",
    "hartebeest", "impala", "gazelle", "Arabian camel", "llama", "weasel", "mink", "polecat",
    "black-footed ferret", "otter", "skunk", "badger", "armadillo", "three-toed sloth",
    "orangutan", "gorilla", "chimpanzee", "gibbon", "siamang", "guenon", "patas", "baboon",
    "macaque", "langur", "colobus", "proboscis monkey", "marmoset", "capuchin", "howler monkey",
    "titi", "spider monkey", "squirrel monkey", "Madagascar cat", "indri", "Indian elephant",
    "African elephant", "lesser panda", "giant panda", "barracouta", "eel", "coho", "rock beauty",
    "anemone fish", "sturgeon", "gar", "lionfish", "puffer", "abacus", "abaya", "academic gown",
    "accordion", "acoustic guitar", "aircraft carrier", "airliner", "airship", "altar",
    "ambulance", "amphibian", "analog clock", "apiary", "apron", "ashcan", "assault rifle",
    "backpack", "bakery", "balance beam", "balloon", "ballpoint", "Band Aid", "banjo", "bannister",
    "barbell", "barber chair", "barbershop", "barn", "barometer", "barrel", "barrow", "baseball",
    "basketball", "bassinet", "bassoon", "bathing cap", "bath towel", "bathtub", "beach wagon",
    "beacon", "beaker", "bearskin", "beer bottle", "beer glass", "bell cote", "bib",
    "bicycle-built-for-two", "bikini", "binder", "binoculars", "birdhouse", "boathouse", "bobsled",
    "bolo tie", "bonnet", "bookcase", "bookshop", "bottlecap", "bow", "bow tie", "brass",
    "brassiere", "breakwater", "breastplate", "broom", "bucket", "buckle", "bulletproof vest",
    "bullet train", "butcher shop", "cab", "caldron", "candle", "cannon", "canoe", "can opener",
    "cardigan", "car mirror", "carousel", "carpenter's kit", "carton", "car wheel", "cash machine",
    "cassette", "cassette player", "castle", "catamaran", "CD player", "cello",
    "cellular telephone", "chain", "chainlink fence", "chain mail", "chain saw", "chest",
    "chiffonier", "chime", "china cabinet", "Christmas stocking", "church", "cinema", "cleaver",
    "cliff dwelling", "cloak", "clog", "cocktail shaker", "coffee mug", "coffeepot", "coil",
    "combination lock", "computer keyboard", "confectionery", "container ship", "convertible",
    "corkscrew", "cornet", "cowboy boot", "cowboy hat", "cradle", "crane", "crash helmet", "crate",
    "crib", "Crock Pot", "croquet ball", "crutch", "cuirass", "dam", "desk", "desktop computer",
    "dial telephone", "diaper", "digital clock", "digital watch", "dining table", "dishrag",
    "dishwasher", "disk brake", "dock", "dogsled", "dome", "doormat", "drilling platform", "drum",
    "drumstick", "dumbbell", "Dutch oven", "electric fan", "electric guitar",
    "electric locomotive", "entertainment center", "envelope", "espresso maker", "face powder",
    "feather boa", "file", "fireboat", "fire engine", "fire screen", "flagpole", "flute",
    "folding chair", "football helmet", "forklift", "fountain", "fountain pen", "four-poster",
    "freight car", "French horn", "frying pan", "fur coat", "garbage truck", "gasmask", "gas pump",
    "goblet", "go-kart", "golf ball", "golfcart", "gondola", "gong", "gown", "grand piano",
    "greenhouse", "grille", "grocery store", "guillotine", "hair slide", "hair spray",
    "half track", "hammer", "hamper", "hand blower", "hand-held computer", "handkerchief",
    "hard disc", "harmonica", "harp", "harvester", "hatchet", "holster", "home theater",
    "honeycomb", "hook", "hoopskirt", "horizontal bar", "horse cart", "hourglass", "iPod", "iron",
    "jack-o'-lantern", "jean", "jeep", "jersey", "jigsaw puzzle", "jinrikisha", "joystick",
    "kimono", "knee pad", "knot", "lab coat", "ladle", "lampshade", "laptop", "lawn mower",
    "lens cap", "letter opener", "library", "lifeboat", "lighter", "limousine", "liner",
    "lipstick", "Loafer", "lotion", "loudspeaker", "loupe", "lumbermill", "magnetic compass",
    "mailbag", "mailbox", "maillot", "maillot tank suit", "manhole cover", "maraca", "marimba",
    "mask", "matchstick", "maypole", "maze", "measuring cup", "medicine chest", "megalith",
    "microphone", "microwave", "military uniform", "milk can", "minibus", "miniskirt", "minivan",
    "missile", "mitten", "mixing bowl", "mobile home", "Model T", "modem", "monastery", "monitor",
    "moped", "mortar", "mortarboard", "mosque", "mosquito net", "motor scooter", "mountain bike",
    "mountain tent", "mouse", "mousetrap", "moving van", "muzzle", "nail", "neck brace",
    "necklace", "nipple", "notebook", "obelisk", "oboe", "ocarina", "odometer", "oil filter",
    "organ", "oscilloscope", "overskirt", "oxcart", "oxygen mask", "packet", "paddle",
    "paddlewheel", "padlock", "paintbrush", "pajama", "palace", "panpipe", "paper towel",
    "parachute", "parallel bars", "park bench", "parking meter", "passenger car", "patio",
    "pay-phone", "pedestal", "pencil box", "pencil sharpener", "perfume", "Petri dish",
    "photocopier", "pick", "pickelhaube", "picket fence", "pickup", "pier", "piggy bank",
    "pill bottle", "pillow", "ping-pong ball", "pinwheel", "pirate", "pitcher", "plane",
    "planetarium", "plastic bag", "plate rack", "plow", "plunger", "Polaroid camera", "pole",
    "police van", "poncho", "pool table", "pop bottle", "pot", "potter's wheel", "power drill",
    "prayer rug", "printer", "prison", "projectile", "projector", "puck", "punching bag", "purse",
    "quill", "quilt", "racer", "racket", "radiator", "radio", "radio telescope", "rain barrel",
    "recreational vehicle", "reel", "reflex camera", "refrigerator", "remote control",
    "restaurant", "revolver", "rifle", "rocking chair", "rotisserie", "rubber eraser",
    "rugby ball", "rule", "running shoe", "safe", "safety pin", "saltshaker", "sandal", "sarong",
    "sax", "scabbard", "scale", "school bus", "schooner", "scoreboard", "screen", "screw",
    "screwdriver", "seat belt", "sewing machine", "shield", "shoe shop", "shoji",
    "shopping basket", "shopping cart", "shovel", "shower cap", "shower curtain", "ski",
    "ski mask", "sleeping bag", "slide rule", "sliding door", "slot", "snorkel", "snowmobile",
    "snowplow", "soap dispenser", "soccer ball", "sock", "solar dish", "sombrero", "soup bowl",
    "space bar", "space heater", "space shuttle", "spatula", "speedboat", "spider web", "spindle",
    "sports car", "spotlight", "stage", "steam locomotive", "steel arch bridge", "steel drum",
    "stethoscope", "stole", "stone wall", "stopwatch", "stove", "strainer", "streetcar",
    "stretcher", "studio couch", "stupa", "submarine", "suit", "sundial", "sunglass", "sunglasses",
    "sunscreen", "suspension bridge", "swab", "sweatshirt", "swimming trunks", "swing", "switch",
    "syringe", "table lamp", "tank", "tape player", "teapot", "teddy", "television", "tennis ball",
    "thatch", "theater curtain", "thimble", "thresher", "throne", "tile roof", "toaster",
    "tobacco shop", "toilet seat", "torch", "totem pole", "tow truck", "toyshop", "tractor",
    "trailer truck", "tray", "trench coat", "tricycle", "trimaran", "tripod", "triumphal arch",
    "trolleybus", "trombone", "tub", "turnstile", "typewriter keyboard", "umbrella", "unicycle",
    "upright", "vacuum", "vase", "vault", "velvet", "vending machine", "vestment", "viaduct",
    "violin", "volleyball", "waffle iron", "wall clock", "wallet", "wardrobe", "warplane",
    "washbasin", "washer", "water bottle", "water jug", "water tower", "whiskey jug", "whistle",
    "wig", "window screen", "window shade", "Windsor tie", "wine bottle", "wing", "wok",
    "wooden spoon", "wool", "worm fence", "wreck", "yawl", "yurt", "web site", "comic book",
    "crossword puzzle", "street sign", "traffic light", "book jacket", "menu", "plate",
    "guacamole", "consomme", "hot pot", "trifle", "ice cream", "ice lolly", "French loaf", "bagel",
    "pretzel", "cheeseburger", "hotdog", "mashed potato", "head cabbage", "broccoli",
    "cauliflower", "zucchini", "spaghetti squash", "acorn squash", "butternut squash", "cucumber",
    "artichoke", "bell pepper", "cardoon", "mushroom", "Granny Smith", "strawberry", "orange",
    "lemon", "fig", "pineapple", "banana", "jackfruit", "custard apple", "pomegranate", "hay",
    "carbonara", "chocolate sauce", "dough", "meat loaf", "pizza", "potpie", "burrito", "red wine",
    "espresso", "cup", "eggnog", "alp", "bubble", "cliff", "coral reef", "geyser", "lakeside",
    "promontory", "sandbar", "seashore", "valley", "volcano", "ballplayer", "groom", "scuba diver",
    "rapeseed", "daisy", "yellow lady's slipper", "corn", "acorn", "hip", "buckeye",
    "coral fungus", "agaric", "gyromitra", "stinkhorn", "earthstar", "hen-of-the-woods", "bolete",
    "ear", "toilet tissue",
)

COCO_CATEGORIES = (
    "__background__", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train",
    "truck", "boat", "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter", "bench",
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "N/A",
    "backpack", "umbrella", "N/A", "N/A", "handbag", "tie", "suitcase", "frisbee", "skis",
    "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard",
    "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", "N/A", "dining table", "N/A", "N/A",
    "toilet", "N/A", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
    "oven", "toaster", "sink", "refrigerator", "N/A", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)

COCO_PERSON_CATEGORIES = (
    "no person", "person",
)

COCO_PERSON_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)

VOC_CATEGORIES = (
    "__background__", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep",
    "sofa", "train", "tvmonitor",
)

# Limbs between COCO person keypoints (0-based indices into COCO_PERSON_KEYPOINT_NAMES; COCO's
# person_keypoints "skeleton").
COCO_PERSON_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)


def categories(name: str) -> tuple[str, ...]:
    """The class names of ``name``'s DEFAULT weights, indexed by output class."""
    from vai_jax.weights import detection, segmentation

    if name == "keypointrcnn_resnet50_fpn":
        return COCO_PERSON_CATEGORIES
    if name in detection.NAMES:
        return COCO_CATEGORIES
    if name in segmentation.NAMES:
        return VOC_CATEGORIES
    return IMAGENET_CATEGORIES
