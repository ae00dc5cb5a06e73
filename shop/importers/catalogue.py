"""Catalogue text rules: product names, the category tree, colours, descriptions.

Pure functions, no database: given a product's name they decide how it is spelled
in the store, which category it belongs to and how it is described. The category
rules are an ordered list of keyword rules (first match wins): Christmas items go to
Christmas first (a gift shop groups them that way), then the product's object noun
("mug", "cushion cover", "t-light holder") decides, then theme words ("garden",
"party"), and what is left goes to the small catch-all ``Gifts > Other``.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from functools import cache

# --- names ------------------------------------------------------------------------------
_SMALL_WORDS = frozenset({"A", "AN", "AND", "AS", "AT", "BY", "FOR", "IN", "OF", "ON", "OR", "THE", "TO", "WITH"})
_ACRONYMS = frozenset(
    {
        "LED",
        "USB",
        "UK",
        "USA",
        "DVD",
        "CD",
        "DIY",
        "XL",
        "XXL",
        "PVC",
        "BBQ",
        "3D",
        "MDF",
        "UFO",
        "ABC",
        "OK",
        "NY",
        "TV",
        "DJ",
        "II",
        "III",
        "IV",
        "RSPCA",
        "CRUK",
        "HM",
        "RAF",
        "WW2",
        "PHS",
    }
)
_SUBWORD = re.compile(r"[A-Za-z0-9']+|[^A-Za-z0-9']+")


def normalise_description(text: str) -> str:
    """Collapse whitespace (the file has leading, trailing and doubled spaces)."""
    return " ".join(text.split())


def _case_word(word: str, first: bool) -> str:
    if not word[0].isalnum():
        return word
    if any(c.islower() for c in word):
        return word  # already mixed case in the source ("40x40cm"): keep it
    if word in _ACRONYMS:
        return word
    if any(c.isdigit() for c in word):
        # "60CM" -> "60cm", "12PC" -> "12pc", "OF4" -> "of4"; "A4", "B52" stay upper.
        letters = word.rstrip("0123456789")
        if word[0].isdigit() or (not first and letters in _SMALL_WORDS):
            return word.lower()
        return word
    if not first and word in _SMALL_WORDS:
        return word.lower()
    if word == "I":
        return word
    return word[0] + word[1:].lower()


def title_case(text: str) -> str:
    """Title-case an upper-case catalogue name sensibly.

    ``"WHITE HANGING HEART T-LIGHT HOLDER"`` -> ``"White Hanging Heart T-Light Holder"``,
    ``"SET OF 3 CAKE TINS PANTRY DESIGN"`` -> ``"Set of 3 Cake Tins Pantry Design"``,
    ``"DOLLY GIRL'S LED NIGHT LIGHT"`` -> ``"Dolly Girl's LED Night Light"``.
    """
    out: list[str] = []
    first = True
    for token in _SUBWORD.findall(normalise_description(text)):
        if token[0].isalnum() or token[0] == "'":
            word = token.strip("'")
            if not word:
                out.append(token)
                continue
            cased = _case_word(word, first)
            out.append(token.replace(word, cased, 1))
            first = False
        else:
            out.append(token)
            if "(" in token or ":" in token:
                first = True  # "(Set of 4)": a new phrase starts
    return re.sub(r"\s+([,.])", r"\1", "".join(out))  # "CRAFT , LITTLE" -> "Craft, Little"


def match_text(name: str) -> str:
    """The form keyword rules match against: upper case, words separated by single
    spaces, punctuation gone (``"T-LIGHT"`` -> ``"T LIGHT"``), padded with spaces."""
    return " " + " ".join(re.sub(r"[^A-Z0-9]+", " ", name.upper()).split()) + " "


# --- the category tree --------------------------------------------------------------------
@dataclass(frozen=True)
class CategoryDef:
    parent: str
    name: str

    @property
    def path(self) -> str:
        return f"{self.parent} > {self.name}"


# Top-level categories in display order, each with its children in display order.
CATEGORY_TREE: dict[str, list[str]] = {
    "Home": [
        "Candles & Lights",
        "Decorations",
        "Signs & Wall Art",
        "Clocks, Frames & Mirrors",
        "Furniture & Storage",
        "Cushions & Textiles",
        "Bath & Fragrance",
    ],
    "Kitchen": ["Cake & Baking", "Tableware", "Kitchen Textiles", "Kitchen Storage"],
    "Bags": ["Shopping & Travel Bags", "Purses & Wash Bags"],
    "Christmas": ["Christmas Decorations", "Christmas Lights & Candles", "Christmas Cards & Wrap"],
    "Stationery": ["Cards", "Gift Wrap & Ribbons", "Notebooks & Paper", "Pens & Pencils", "Arts & Crafts"],
    "Garden": ["Gardening", "Outdoor Living"],
    "Toys & Games": ["Toys", "Games & Puzzles", "Party"],
    "Jewellery & Accessories": ["Jewellery", "Hair Accessories", "Fashion Accessories"],
    "Gifts": ["Keepsakes & Novelties", "Other"],
}
CATCH_ALL = "Gifts > Other"

# A colour per category (top-level names and "Parent > Child" paths): children share
# their parent's hue family, and every pair differs by a CIE76 distance of 13 or more,
# so no two categories' placeholder images look alike.
CATEGORY_COLOURS: dict[str, str] = {
    "Christmas": "#7a2929",
    "Christmas > Christmas Decorations": "#b43c3c",
    "Christmas > Christmas Lights & Candles": "#b65d6a",
    "Christmas > Christmas Cards & Wrap": "#d2416d",
    "Home": "#7a4929",
    "Home > Candles & Lights": "#b4603c",
    "Home > Decorations": "#b6855d",
    "Home > Signs & Wall Art": "#d28a41",
    "Home > Clocks, Frames & Mirrors": "#997a33",
    "Home > Furniture & Storage": "#d2a741",
    "Home > Cushions & Textiles": "#a56627",
    "Home > Bath & Fragrance": "#c24b2e",
    "Kitchen": "#7f841f",
    "Kitchen > Cake & Baking": "#b4b43c",
    "Kitchen > Tableware": "#b6a95d",
    "Kitchen > Kitchen Textiles": "#d2d241",
    "Kitchen > Kitchen Storage": "#a58c27",
    "Garden": "#3d7a29",
    "Garden > Gardening": "#5ab43c",
    "Garden > Outdoor Living": "#8ab65d",
    "Gifts": "#297a56",
    "Gifts > Keepsakes & Novelties": "#3cb47e",
    "Gifts > Other": "#5db6a0",
    "Bags": "#29767a",
    "Bags > Shopping & Travel Bags": "#4fb3c4",
    "Bags > Purses & Wash Bags": "#337599",
    "Stationery": "#29497a",
    "Stationery > Cards": "#3c66b4",
    "Stationery > Gift Wrap & Ribbons": "#2e53c2",
    "Stationery > Notebooks & Paper": "#2e35c2",
    "Stationery > Pens & Pencils": "#4198d2",
    "Stationery > Arts & Crafts": "#4a6fa5",
    "Toys & Games": "#45297a",
    "Toys & Games > Toys": "#783cb4",
    "Toys & Games > Games & Puzzles": "#7c5db6",
    "Toys & Games > Party": "#b541d2",
    "Jewellery & Accessories": "#7a296e",
    "Jewellery & Accessories > Jewellery": "#b43ca2",
    "Jewellery & Accessories > Hair Accessories": "#b65d9c",
    "Jewellery & Accessories > Fashion Accessories": "#993366",
}


def category_paths() -> list[str]:
    return [f"{top} > {child}" for top, children in CATEGORY_TREE.items() for child in children]


def category_colours() -> dict[str, str]:
    return dict(CATEGORY_COLOURS)


# --- keyword rules -------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    path: str
    words: tuple[str, ...]
    requires: tuple[str, ...] = ()  # and also one of these (when given)
    excludes: tuple[str, ...] = ()  # and none of these
    unless: tuple[str, ...] = ()  # skip the rule when any of these occurs anywhere in the name


def _w(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.split("|") if w.strip())


_XMAS = _w(
    "CHRISTMAS|BLACKCHRISTMAS|XMAS|ADVENT|SANTA|REINDEER|BAUBLE|NOEL|TINSEL|NATIVITY|SNOWMAN|SNOWMEN|"
    "FATHER CHRISTMAS|ROBIN|NUTCRACKER|CHRISTMAS TREE|ELF|SLEIGH|MISTLETOE|WREATH|TREE DECORATION"
)

RULES: tuple[Rule, ...] = (
    # Other seasons before Christmas: an Easter wreath is not a Christmas decoration.
    Rule("Home > Decorations", _w("EASTER|HALLOWEEN"), unless=_w("CARD|CARDS|MOULD|BAKING")),
    # Christmas next: the shop groups everything festive together.
    Rule(
        "Christmas > Christmas Cards & Wrap",
        _XMAS,
        requires=_w("CARD|MINICARD|WRAP|WRAPPING|CRACKER|GIFT TAG|TAG|GIFT BAG|PAPER CHAIN|TISSUE|RIBBON|STICKER"),
    ),
    Rule(
        "Christmas > Christmas Lights & Candles",
        _XMAS,
        requires=_w("CANDLE|LIGHT|T LIGHT|LANTERN|TEALIGHT|LED|LAMP|CANDLEHOLDER"),
    ),
    Rule("Christmas > Christmas Decorations", _XMAS, excludes=_w("ROBIN HOOD")),
    # Nouns that name the object whatever else the name says: a mug in a gift box is a
    # mug, a bracelet of beads is jewellery, a cake-shaped candle is a candle, a money
    # bank shaped as a cake is a money bank, a jewelled photo frame is a frame.
    Rule(
        "Jewellery & Accessories > Jewellery",
        _w("NECKLACE|BRACELET|EARRINGS|BROOCH|BANGLE|PENDANT|LOCKET|CHOKER|ANKLET|CUFFLINKS"),
    ),
    Rule("Home > Clocks, Frames & Mirrors", _w("PHOTOFRAME|PHOTO FRAME|PICTURE FRAME"), unless=_w("STICKER")),
    Rule("Gifts > Keepsakes & Novelties", _w("MONEY BANK|MONEY BOX|PIGGY BANK|ASHTRAY")),
    Rule("Home > Candles & Lights", _w("CANDLE|T LIGHT|TLIGHT|TEALIGHT|CANDLEHOLDER|CANDLESTICK|LAMPSHADE")),
    Rule("Kitchen > Tableware", _w("MUG|TEAPOT|TEACUP|EGG CUP|CHARGER"), unless=_w("MUG COSY|MUG WARMER")),
    Rule(
        "Home > Signs & Wall Art",
        _w("PLAQUE|WALL PLAQUE|METAL SIGN|DOOR SIGN|BLACKBOARD|CHALKBOARD"),
        unless=_w("ORGANISER"),
    ),
    Rule("Stationery > Arts & Crafts", _w("STICKER|STICKER SHEET|SEWING|MEASURING TAPE|TAPE MEASURE|KNITTING")),
    Rule("Garden > Gardening", _w("KNEELING PAD|KNEELER|WATERING CAN|BIRD FEEDER")),
    Rule("Home > Furniture & Storage", _w("UMBRELLA STAND|DOORSTOP|DOOR STOP")),
    Rule("Garden > Outdoor Living", _w("BUCKET")),
    # Object nouns whose words would otherwise send them elsewhere (order matters).
    Rule(
        "Home > Cushions & Textiles",
        _w(
            "HOT WATER BOTTLE|CUSHION|CUSHION COVER|DOORMAT|DOOR MAT|THROW|"
            "QUILT|BLANKET|BEDSPREAD|PILLOWCASE|FILLER PAD|POUFFE|"
            "DRAUGHT EXCLUDER|CHAIR PAD|SEAT PAD"
        ),
    ),
    Rule("Home > Clocks, Frames & Mirrors", _w("CLOCK|ALARM CLOCK|WALL CLOCK")),
    Rule(
        "Home > Bath & Fragrance",
        _w(
            "SOAP|SOAP DISH|INCENSE|OIL BURNER|ESSENTIAL OIL|FRAGRANCE OIL|"
            "BATHROOM|BATH|TOILET|TOILETTE|LIP GLOSS|LIP BALM|PLASTERS|"
            "NAIL FILE|MANICURE|POT POURRI|POTPOURRI|DIFFUSER|WASHING UP"
        ),
    ),
    Rule(
        "Kitchen > Kitchen Textiles",
        _w(
            "TEA TOWEL|APRON|OVEN GLOVE|TEA COSY|MUG COSY|CAKE TOWEL|"
            "DISH CLOTH|DISHCLOTH|POT HOLDER|KITCHEN TOWEL|TEA TOWELS"
        ),
    ),
    Rule(
        "Bags > Shopping & Travel Bags",
        _w(
            "LUNCH BAG|JUMBO BAG|JUMBO SHOPPER|JUMBO STORAGE BAG|"
            "SHOPPER|TOTE|CHARLOTTE BAG|SHOPPING BAG|BEACH BAG|RECYCLED BAG|"
            "STORAGE BAG|LAUNDRY BAG|CARRY BAG|STRAW BAG|BOOK BAG|BACKPACK|"
            "RUCKSACK|AIRLINE BAG|CABIN BAG|TRAVEL BAG|HOLDALL|SATCHEL"
        ),
    ),
    Rule(
        "Bags > Purses & Wash Bags",
        _w(
            "PURSE|WALLET|HANDBAG|SHOULDER BAG|WASH BAG|WASHBAG|"
            "MAKE UP BAG|MAKEUP BAG|COSMETIC BAG|TOILETRY BAG|SPONGE BAG|"
            "PASSPORT COVER|COIN PURSE|CLUTCH|VANITY BAG|BUM BAG|POUCH"
        ),
    ),
    Rule("Toys & Games > Games & Puzzles", _w("MARBLES")),
    Rule("Home > Decorations", _w("GLASS GEMS|SILVER STONES|STONES|PEBBLES|BUDDHA")),
    Rule("Bags > Shopping & Travel Bags", _w("BAG|BAGS"), excludes=_w("BAG CHARM|BAG CHARMS|TEA BAG|BEAN BAG|IN BAG")),
    Rule(
        "Toys & Games > Games & Puzzles",
        _w(
            "GAME|JIGSAW|PUZZLE|DOMINOES|DOMINOS|PLAYING CARDS|"
            "SNAKES|LADDERS|BINGO|DICE|CHESS|LUDO|QUIZ|MARBLES|"
            "CARD GAME|PACK OF CARDS|SNAP CARDS|FLYING DISC|FRISBEE|"
            "CROQUET|SKITTLES|HOOPLA|QUOITS"
        ),
    ),
    Rule(
        "Stationery > Gift Wrap & Ribbons",
        _w(
            "GIFT WRAP|WRAP|WRAPPING PAPER|WRAPPING|GIFT TAG|GIFT TAGS|"
            "RIBBON|RIBBONS|GIFT BAG|TISSUE PAPER|CELLOPHANE|"
            "GIFT BOX|BOW|BOWS|RAFFIA|TWINE"
        ),
    ),
    Rule(
        "Kitchen > Cake & Baking",
        _w(
            "CAKE CASES|CAKE CASE|CAKESTAND|CAKE STAND|CAKE TIN|CAKE TINS|"
            "BAKING|BAKE|CUPCAKE|CUP CAKE|MUFFIN|COOKIE CUTTER|BISCUIT CUTTER|"
            "CUTTER|ICING|JELLY MOULD|PUDDING|CAKE PLATE|CAKE DOME|CAKE MOULD|"
            "MOULD|MOULDS|CAKE SLICE|PASTRY|ROLLING PIN|CAKE FORKS|CAKE TOPPER|"
            "CAKE|CAKES|DOILIES|DOILY|PAPER CASES|BAKING CASES|SPRINKLES"
        ),
    ),
    Rule(
        "Home > Candles & Lights",
        _w(
            "T LIGHT|TLIGHT|TEALIGHT|CANDLE|CANDLES|CANDLEHOLDER|CANDLESTICK|"
            "LANTERN|LAMP|LAMPSHADE|LIGHTS|LIGHT|NIGHT LIGHT|FAIRY LIGHTS|"
            "CHANDELIER|LED|TORCH|STRING LIGHTS|VOTIVE|OIL BURNER|WAX|"
            "LIGHT GARLAND|HURRICANE"
        ),
    ),
    Rule(
        "Kitchen > Tableware",
        _w(
            "MUG|MUGS|CUP|CUPS|SAUCER|SAUCERS|PLATE|PLATES|BOWL|BOWLS|TEAPOT|"
            "TEA POT|CUTLERY|SPOON|SPOONS|TEASPOONS|FORK|FORKS|KNIFE|GLASS TUMBLER|"
            "TUMBLER|TUMBLERS|NAPKIN|NAPKINS|PLACEMAT|PLACEMATS|PLACE MAT|COASTER|"
            "COASTERS|JUG|BEAKER|BEAKERS|STRAW|STRAWS|TRAY|TRAYS|EGG CUP|EGG CUPS|"
            "TEA SET|TEACUP|CHOPSTICKS|WINE GLASS|GLASSES|GOBLET|CHAMPAGNE|CARAFE|"
            "DECANTER|SERVING|SALAD|DISH|DISHES|BUTTER DISH|SUGAR BOWL|CREAMER|"
            "MILK JUG|CAFETIERE|TEA STRAINER|NAPKIN RING|NAPKIN CHARMS|PICNIC SET|"
            "FLASK|DOUGHNUT|CONDIMENT|CRUET|SALT|PEPPER|TOAST RACK|BREAD BOARD|"
            "CHOPPING BOARD|CHEESE BOARD|TABLECLOTH|TABLE CLOTH|TABLE RUNNER|"
            "ICE LOLLY|LOLLY|SNACK BOXES|DINNER|COCKTAIL|PLATTER|FRUITBOWL|FRUIT BOWL|"
            "TOASTRACK|SUGAR DISPENSER|SUGAR TONGS|COFFEE SET|EGG COSY|"
            "CAKE SERVER|TRIVET|HIP FLASK|TABLE RUN|POPCORN"
        ),
    ),
    Rule(
        "Kitchen > Kitchen Storage",
        _w(
            "JAR|JARS|LUNCH BOX|LUNCHBOX|LUNCH BOXES|SNACK BOX|BREAD BIN|"
            "BISCUIT TIN|TEA CADDY|CADDY|RECIPE BOX|RECIPE|JAM MAKING|JAM|"
            "CANISTER|CANISTERS|STORAGE TIN|STORAGE TINS|TINS|TIN|CONTAINER|"
            "KITCHEN SCALES|GLASS BOTTLE|FOOD COVER|FOOD COVERS|SPICE|"
            "KITCHEN ORGANISER|UTENSIL|MEASURING SPOONS|MEASURING JUG|"
            "KITCHEN TIMER|EGG TIMER|WHISK|SIEVE|COLANDER|GRATER|FUNNEL|"
            "BREAD|PANTRY|LARDER|MILK BOTTLE|PICNIC BOX|MILK PAN|FRYING PAN|"
            "SAUCEPAN|PAN|COOKING SET|OVEN MITT|SPATULA|LADLE|TONGS|"
            "BOTTLE OPENER|CORKSCREW|WASHING UP BRUSH|KITCHEN"
        ),
    ),
    Rule(
        "Home > Decorations",
        _w(
            "DECORATION|DECORATIONS|HANGING DECORATION|ORNAMENT|ORNAMENTS|ART FLOWER|"
            "ARTIFICIAL FLOWER|FEATHER TREE|WREATH|VASE|VASES|SNOW GLOBE|GARLAND"
        ),
    ),
    Rule(
        "Toys & Games > Party",
        _w(
            "PARTY|BALLOON|BALLOONS|PAPER GARLAND|HONEYCOMB|PAPER BALL|PAPER CHAIN|"
            "PAPER PARASOL|PAPER PLATES|PAPER CUPS|BUNTING|PINATA|CONFETTI"
        ),
    ),
    Rule(
        "Gifts > Keepsakes & Novelties",
        _w(
            "FRIDGE MAGNET|FRIDGE MAGNETS|MAGNETS|MAGNET|MATCHES|"
            "PAPERWEIGHT|P WEIGHT|KEEPSAKE|MONEY BOX|MONEY BANK|PIGGY BANK|"
            "WINE BOTTLE DRESSING|BOTTLE TOP"
        ),
    ),
    Rule(
        "Stationery > Cards",
        _w("GREETING CARD|BIRTHDAY CARD|CARD|CARDS|POSTCARD|POSTCARDS|INVITES|INVITATIONS|ENVELOPES|ENVELOPE"),
    ),
    Rule(
        "Stationery > Pens & Pencils",
        _w(
            "PEN|PENS|PENCIL|PENCILS|ERASER|ERASERS|RUBBER|RUBBERS|"
            "SHARPENER|RULER|RULERS|CRAYONS|CRAYON|PENCIL CASE|"
            "HIGHLIGHTER|BALLPOINT|FELT TIP|COLOURING PENCILS|QUILL"
        ),
    ),
    Rule(
        "Stationery > Notebooks & Paper",
        _w(
            "NOTEBOOK|NOTEBOOKS|NOTE BOOK|NOTEPAD|NOTE PAD|NOTES|"
            "SKETCHBOOK|SKETCH BOOK|JOURNAL|DIARY|ADDRESS BOOK|"
            "STICKER|STICKERS|STICKER SHEET|WRITING SET|MEMO|MEMO PAD|"
            "PAPER|LETTER WRITING|ORGANISER|PHOTO ALBUM|ALBUM|SCRAPBOOK|"
            "BOOKMARK|BOOK|BOOKS|CALENDAR|PLANNER|CLIPBOARD|PAD|LABELS|"
            "LABEL|STATIONERY|TAPE|STAMP|STAMPS|PAPERWEIGHT|CHALKBOARD|"
            "BLACKBOARD|MAGNETIC BOARD|PEG BOARD|MEMO BOARD|"
            "WRITING|ENVELOPE|FOLDER|FILE"
        ),
    ),
    Rule(
        "Stationery > Arts & Crafts",
        _w(
            "CRAFT|CRAFTS|SEWING|KNITTING|KNITTED KIT|CROCHET|PAINT|"
            "PAINTING|PAINTS|COLOURING|COLORING|STENCIL|GLITTER|FELT CRAFT|"
            "EMBROIDERY|BUTTONS|BUTTON|NEEDLE|THREAD|SCISSORS|GLUE|"
            "CREATE YOUR OWN|MAKE YOUR OWN|DECOUPAGE|TRANSFER|TATTOOS|"
            "BEADS|CHALK|MODELLING|ORIGAMI|SEQUIN|SEQUINS|POMPOM|POM POM"
        ),
    ),
    Rule(
        "Jewellery & Accessories > Hair Accessories",
        _w(
            "HAIR|HAIRSLIDE|HAIRCLIP|HAIR CLIP|HAIR SLIDE|"
            "HAIRBAND|HAIR BAND|HAIRGRIP|BOBBLE|BOBBLES|"
            "ALICE BAND|HAIR COMB|SCRUNCHIE|TIARA|HAIR TIE|"
            "HAIR BOW|HAIRPINS|SLIDES|HAIR GRIPS|HEADBAND"
        ),
    ),
    Rule(
        "Jewellery & Accessories > Jewellery",
        _w(
            "NECKLACE|NECKLACES|EARRINGS|EARRING|BRACELET|"
            "BRACELETS|BROOCH|BROOCHES|BANGLE|BANGLES|PENDANT|"
            "LOCKET|CHOKER|RING|RINGS|DIAMANTE|JEWELLERY|JEWELRY|"
            "CHARM|CHARMS|ANKLET|CUFFLINKS|BEADED|CRYSTAL|PEARL|"
            "JEWELLED|GEM|STUD|LARIAT|NECKL|NECKLAC|EARR|BRACEL|BRACELE|HOOP"
        ),
        excludes=_w("KEY RING|KEYRING|NAPKIN RING|CURTAIN RING|RING BINDER|RINGS BINDER"),
    ),
    Rule(
        "Jewellery & Accessories > Fashion Accessories",
        _w(
            "UMBRELLA|GLOVES|GLOVE|MITTENS|SCARF|SCARVES|"
            "HAT|HATS|CAP|HAND WARMER|KEY RING|KEYRING|"
            "KEY FOB|KEY CHAIN|COMPACT MIRROR|SUNGLASSES|"
            "SLIPPER|SLIPPERS|SOCKS|BELT|PONCHO|RAINCOAT|WELLIES|"
            "WELLINGTON|BADGE|BADGES|PIN|BUTTON BADGE|"
            "LIPSTICK MIRROR|POCKET MIRROR|EAR MUFFS|"
            "WATCH|SHAWL|PASHMINA|TIE|FASCINATOR|"
            "HANDBAG MIRROR|LUGGAGE TAG|SHOPPING LIST|"
            "LANYARD|HAIRNET|PARASOL"
        ),
    ),
    Rule(
        "Home > Clocks, Frames & Mirrors",
        _w(
            "CLOCK|CLOCKS|ALARM|PHOTO FRAME|PICTURE FRAME|FRAME|FRAMES|"
            "MIRROR|MIRRORS|PHOTO HOLDER|PHOTO CLIP|PHOTO CUBE|PHOTO"
        ),
    ),
    Rule(
        "Home > Signs & Wall Art",
        _w(
            "SIGN|SIGNS|METAL SIGN|DOOR SIGN|PLAQUE|PLAQUES|WALL ART|"
            "CANVAS|PICTURE|PICTURES|POSTER|WALL TIDY|WALL HANGING|SLATE|WOOD LETTERS|LETTERS|"
            "NUMBER TILE|TILE|TILES|LETTER TILE|BLOCK WORD|BLOCK LETTERS|"
            "ALPHABET|ART|WALL STICKER|WALL DECAL|DOOR HANGER|DOORSTOP|"
            "DOOR STOP|HOOK SIGN"
        ),
    ),
    Rule(
        "Home > Cushions & Textiles",
        _w(
            "CUSHION|CUSHIONS|CUSHION COVER|THROW|BLANKET|QUILT|"
            "HOT WATER BOTTLE|DOORMAT|DOOR MAT|MAT|RUG|CURTAIN|CURTAINS|"
            "BEDSPREAD|PILLOW|PILLOWCASE|DUVET|BUNTING|FABRIC|FILLER PAD|"
            "CHAIR PAD|SEAT PAD|DRAUGHT EXCLUDER|BEANBAG|BEAN BAG|"
            "TEXTILE|CHENILLE|VOILE|FELT|LINEN|COTTON|FLANNEL|"
            "PATCHWORK|KNITTED|TOWEL|TOWELS|FLEECE"
        ),
    ),
    Rule(
        "Home > Bath & Fragrance",
        _w(
            "SOAP|SOAPS|BATH|BATHROOM|INCENSE|FRAGRANCE|SCENTED|"
            "OIL BURNER|ESSENTIAL OIL|OIL|POT POURRI|POTPOURRI|DIFFUSER|"
            "LAVENDER|TISSUES|TISSUE|TOILET|TOOTHBRUSH|SPONGE|NAIL|"
            "MANICURE|COSMETIC|SHAVING|SHOWER|FLANNEL|LIP BALM|"
            "HAND CREAM|BODY|PERFUME|BATH SALTS|SACHET|SACHETS"
        ),
    ),
    Rule(
        "Home > Furniture & Storage",
        _w(
            "CHAIR|STOOL|TABLE|FURNITURE|SIDEBOARD|BENCH|BOX|BOXES|STORAGE|CABINET|DRAWER|DRAWERS|CHEST|"
            "BASKET|BASKETS|HAMPER|BIN|WASTEPAPER BIN|CRATE|CRATES|"
            "HOOK|HOOKS|HANGER|HANGERS|COAT RACK|COAT HANGER|"
            "KEY CABINET|KEY HOLDER|KEY BOX|SHELF|SHELVES|RACK|"
            "TRINKET BOX|TRINKET POT|TRINKET|ORGANISER|TIDY|CADDY|"
            "CUPBOARD|SUITCASE|TRUNK|CASE|PEG|PEGS|HOLDER|STAND|"
            "MAGAZINE RACK|LETTER RACK|CLOTHES PEGS|WARDROBE|"
            "MONEY BOX|MONEY BANK|PIGGY BANK|PURSE HOLDER|"
            "DOOR KNOB|DRAWER KNOB|KNOB|KNOBS|HANDLE"
        ),
    ),
    Rule(
        "Garden > Gardening",
        _w(
            "GARDEN|GARDENERS|GARDENING|WATERING CAN|WATERING|PLANT|PLANTS|"
            "PLANTER|PLANTERS|FLOWER POT|FLOWERPOT|POT|POTS|SEED|SEEDS|GROW|"
            "SPADE|TROWEL|RAKE|HOE|KNEELING PAD|HERB MARKER|BIRD FEEDER|"
            "BIRD HOUSE|BIRDHOUSE|BIRD TABLE|NEST BOX|NESTING BOX|GNOME|TRELLIS|"
            "GREENHOUSE|WINDMILL|WIND CHIME|WINDCHIME|CHIME|CHIMES|BIRD BATH|"
            "GARDEN SIGN|DOVECOTE|PLANT LABELS|PLANT MARKERS|SECATEURS|"
            "FLYTRAP|SUNFLOWER|BULB|BULBS|CLOCHE|HERBS|POTTING|HOSE|"
            "INSECT|BUTTERFLY HOUSE|BEE HOUSE|BUG HOTEL|WEATHERVANE|"
            "THERMOMETER|RAIN GAUGE|BIRD FEEDER|BIRD BOX"
        ),
    ),
    Rule(
        "Garden > Outdoor Living",
        _w(
            "PICNIC|BEACH|BBQ|BARBECUE|HAMMOCK|DECKCHAIR|DECK CHAIR|"
            "WINDBREAK|CAMPING|OUTDOOR|PATIO|GARDEN TORCH|PARASOL|"
            "BUCKET|SPADE AND BUCKET|SEASIDE|SANDCASTLE|BEACH HUT|TENT|"
            "WATER BOTTLE|COOL BAG|COOLBAG"
        ),
    ),
    Rule(
        "Toys & Games > Party",
        _w(
            "PARTY|BALLOON|BALLOONS|CONFETTI|PINATA|STREAMER|STREAMERS|"
            "PARTY BAG|PARTY BAGS|PAPER PLATES|PAPER CUPS|PAPER NAPKINS|"
            "BIRTHDAY|CELEBRATION|FANCY DRESS|MASK|MASKS|GARLAND|PAPER CHAIN|"
            "PAPER LANTERN|POM POMS|HONEYCOMB|BANNER|FLAGS|FLAG|WEDDING|"
            "HEN PARTY|PARTY HAT|CRACKERS|POPPERS|SPARKLERS"
        ),
    ),
    Rule(
        "Toys & Games > Toys",
        _w(
            "TOY|TOYS|DOLL|DOLLS|DOLLY|TEDDY|TEDDIES|SOFT TOY|SPINNING TOP|"
            "HELICOPTER|SKIPPING ROPE|BALL|BALLS|PUPPET|PUPPETS|YO YO|YOYO|"
            "PLAYHOUSE|DOLLS HOUSE|KITE|KITES|SPACEBOY|ROBOT|DINOSAUR|RABBIT|"
            "BUNNY|MONKEY|ELEPHANT|BEAR|KIT|KITS|BUILDING BLOCKS|BLOCKS|"
            "BABY|CHILDS|CHILDRENS|KIDS|CHILD|TRAIN|CAR|CARS|SOLDIER|SOLDIERS|"
            "RATTLE|MOBILE|MAGIC|BUBBLES|WATER PISTOL|PLASTICINE|GLIDER|"
            "AEROPLANE|PLANE|BOAT|ANIMAL|ANIMALS|FARM|ZOO|CIRCUS|PIRATE|"
            "PRINCESS|FAIRY|MERMAID|TOADSTOOL|HORSE|PONY|DOG|CAT|CATS|OWL|"
            "PIG|DUCK|CHICK|CHICKS|FROG|SNAKE|TIGER|LION|PANDA|LAMB|"
            "HEN|CHICKEN|MOUSE|MICE|SHEEP|BUNNIES|SKITTLE|JACKS|"
            "SLINKY|SPINNING|WIND UP|CLOCKWORK|MAGNET|MAGNETS|TIN TOY"
        ),
    ),
    Rule(
        "Home > Decorations",
        _w(
            "DECORATION|DECORATIONS|HANGING|ORNAMENT|ORNAMENTS|HEART|HEARTS|"
            "GARLAND|WREATH|STAR|STARS|FLOWER|FLOWERS|ROSE|ROSES|FEATHER|"
            "BUTTERFLY|BUTTERFLIES|BIRDS|VASE|VASES|FIGURE|FIGURINE|STATUE|"
            "SCULPTURE|BUST|DOVE|ANGEL|ANGELS|EGG|EGGS|EASTER|BUNNY|CHICK|"
            "HOME|LOVE|SWEETHEART|DECORATIVE|BIRD|FLORAL|PAPER FAN|FAN|"
            "POMANDER|TASSEL|WIND|MOBILE|SNOW GLOBE|GLOBE|BAUBLE|BELL|BELLS|"
            "WICKER|DOORKNOB|CANDY|HANGER|SHELL|SHELLS|DRIFTWOOD|BUNTING|"
            "HALLOWEEN|SKULL|GHOST|PUMPKIN|ZINC|PORCELAIN|CERAMIC|GLASS"
        ),
    ),
    Rule(
        "Gifts > Keepsakes & Novelties",
        _w(
            "GIFT|GIFTS|KEEPSAKE|MEMENTO|NOVELTY|SOUVENIR|"
            "FRIDGE MAGNET|FRIDGE MAGNETS|SNOW GLOBE|PAPERWEIGHT|"
            "MONEY BOX|PIGGY BANK|ASHTRAY|LIGHTER|MATCHES|PLAYING|"
            "SPORTS|FOOTBALL|GOLF|TENNIS|CRICKET|BEER|WINE|COCKTAIL|"
            "POPART|"
            "TRAVEL|PASSPORT|CHARITY"
        ),
    ),
)


@cache
def _compiled() -> tuple[tuple[str, re.Pattern, re.Pattern | None, re.Pattern | None, re.Pattern | None], ...]:
    def rx(words: tuple[str, ...]) -> re.Pattern | None:
        if not words:
            return None
        alts = "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
        return re.compile(rf" (?:{alts})(?:S|ES)? ")

    known = set(category_paths())
    out = []
    for rule in RULES:
        if rule.path not in known:
            raise ValueError(f"rule targets unknown category {rule.path!r}")
        out.append((rule.path, rx(rule.words), rx(rule.requires), rx(rule.excludes), rx(rule.unless)))
    return tuple(out)


def categorise(name: str) -> str:
    """The ``"Parent > Child"`` category path of a product, by the first rule whose
    keywords occur in its name (whole words, plurals included); ``CATCH_ALL`` if none."""
    text = match_text(name)
    for path, words, requires, excludes, unless in _compiled():
        if words.search(text) is None:
            continue
        if unless is not None and unless.search(text) is not None:
            continue
        if requires is not None and requires.search(text) is None:
            continue
        if excludes is not None and excludes.search(text) is not None:
            # A rule's excluded phrase ("key ring" for jewellery) does not block later rules.
            if words.search(excludes.sub(" ", text)) is None:
                continue
        return path
    return CATCH_ALL


# --- descriptions ------------------------------------------------------------------------
_TOP_LINES = {
    "Home": (
        "A warm, characterful touch for any room.",
        "Brings a little personality to the home.",
        "Easy to love and easy to place, from hallway to bedroom.",
    ),
    "Kitchen": (
        "Made for everyday use in the kitchen and at the table.",
        "Practical, cheerful and built for daily use.",
        "A favourite for bakers and hosts alike.",
    ),
    "Bags": (
        "Roomy, sturdy and ready for everyday errands.",
        "Carries the essentials in style.",
        "A practical bag that is a pleasure to carry.",
    ),
    "Christmas": (
        "Part of our festive range for the holiday season.",
        "Brings the Christmas spirit into the home.",
        "A seasonal favourite, year after year.",
    ),
    "Stationery": (
        "For notes, lists, letters and little creative projects.",
        "Makes desk work and gift giving a little brighter.",
        "A pretty addition to any desk.",
    ),
    "Garden": (
        "Made for the garden, the patio and sunny afternoons.",
        "For green fingers and fresh air.",
        "Brings charm to outdoor spaces.",
    ),
    "Toys & Games": (
        "Made for play, parties and family time.",
        "Fun for children and the young at heart.",
        "A cheerful pick for playtime.",
    ),
    "Jewellery & Accessories": (
        "A finishing touch for any outfit.",
        "Easy to wear and easy to gift.",
        "Adds a little sparkle to the everyday.",
    ),
    "Gifts": (
        "A thoughtful little gift for someone special.",
        "A charming find for gift giving.",
        "Small, cheerful and easy to gift.",
    ),
}
_MATERIALS = (
    "WOODEN",
    "WOOD",
    "GLASS",
    "CERAMIC",
    "PORCELAIN",
    "METAL",
    "ENAMEL",
    "ZINC",
    "TIN",
    "PAPER",
    "FELT",
    "COTTON",
    "LINEN",
    "WICKER",
    "BAMBOO",
    "SILVER",
    "IRON",
    "CRYSTAL",
    "VELVET",
    "LEATHER",
    "RESIN",
    "WIRE",
    "CANVAS",
    "ACRYLIC",
)
_MATERIAL_NAMES = {"WOODEN": "wood", "WOOD": "wood", "TIN": "tin"}
_SET_RX = re.compile(r"\b(?:SET|PACK|BOX)\s*(?:OF\s*|/\s*)(\d+)\b|\bS/(\d+)\b")


def _stable(text: str) -> int:
    return zlib.crc32(text.encode())


def describe(*, name: str, category_path: str, key: str) -> str:
    """A short product description generated from the name and category.

    Deterministic: the same ``key`` (the SKU), name and category always give the same
    text, so re-running an import writes nothing new."""
    top, _, child = category_path.partition(" > ")
    text = match_text(name)
    lines = _TOP_LINES.get(top, _TOP_LINES["Gifts"])
    parts = [f"{name}.", lines[_stable(key) % len(lines)]]
    found = [m for m in _MATERIALS if f" {m} " in text]
    if found:
        parts.append(f"Made of {_MATERIAL_NAMES.get(found[0], found[0].lower())}.")
    m = _SET_RX.search(name.upper())
    if m:
        parts.append(f"Comes as a set of {m.group(1) or m.group(2)}.")
    if " VINTAGE " in text or " RETRO " in text or " ANTIQUE " in text:
        parts.append("A vintage-inspired design.")
    if child and child != "Other":
        parts.append(f"From our {child} collection.")
    return " ".join(parts)
