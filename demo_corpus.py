"""Offline demo corpus: synthetic songs sung in English and in Bangla (or more languages), from nothing but PyPI.

    python demo_corpus.py --out data/demo --songs 120 --seed 42
    python demo_corpus.py --out data/demo5 --songs 130 --languages english,bangla,hindi,spanish,tamil \
        --language-shares 5,3,2,2,1     # unequal sizes, as a real library has; needs wordfreq==3.1.1
    python demo_corpus.py --out data/demo_b --seed 7 --set "tempo_range=(60,170)" --set "vocal_level_db=(-9,3)"
    python demo_corpus.py --out data/voice_demo --voices my_voices        # <language>/<speaker>/*.wav
    python demo_corpus.py --out data/voice_demo_bg --voices my_voices --no-vocals   # the control

Vocals are espeak-ng (the espeakng-loader wheel, called through ctypes; no system install)
singing word by word on a melody: each word is synthesized on one constant f0, the frequency
of its melody note (espeak_ng_SetConstF0), stretched toward the notes it holds and placed on
the song's eighth-note grid; a vibrato and a reverb make it sing rather than speak. The
accompaniment (chords, bass and drums in five styles) is additive synthesis in numpy.

The corpus is a FAIR test of language clustering: the singers of both languages get the same
voice variants, pitches and speeds; style, tempo, key, length and vocal level are drawn for
each song independently of its language; every mix is normalized the same way. What differs
between the languages is the sung language (and the names in the manifest).

--languages adds any language of LANGUAGE_CODES that espeak-ng voices and wordfreq has a word list
for (Hindi, Urdu, Tamil, Spanish, French, German...): its singers sing its most frequent words, in
its own script; --language-shares deals the songs unequally. The default stays English and Bangla
in equal turns, song for song the same corpus as before these flags existed.

With --voices, a speaker's recordings (band-limited, RMS-normalized) replace the singing: the
language is the folder name, the speaker the artist (--languages picks and orders the folders).
--no-vocals keeps the accompaniment alone.

Writes <out>/<song_id>.wav (22,050 Hz mono PCM16) and <out>/manifest.csv (MANIFEST_COLUMNS).
Songs already on disk are skipped, so a re-run resumes; each WAV appears atomically.
"""
import argparse
import ast
import ctypes
import importlib
import json
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from scipy import signal
from tqdm import tqdm

import common

# -----------------------------------------------------------------------------
# corpus size
DEMO_SONGS = 120  # songs in the default corpus, half in each language (LANGUAGE_SHARES: equal)
DEMO_MIN_SECONDS = 60.0  # shortest song, seconds
DEMO_MAX_SECONDS = 120.0  # longest song, seconds
ARTISTS_PER_LANGUAGE = 8  # singers per language; songs are dealt to them in turn
DEMO_SEED = 42  # seed of the whole corpus; song i draws from its own Generator([seed, i])
SAMPLE_RATE = common.SAMPLE_RATE  # Hz; espeak-ng synthesizes at 22,050 Hz as well
LANGUAGES = ("english", "bangla")  # the default labels, exactly as the manifest writes them
LANGUAGE_SHARES = None  # relative song counts per language (--language-shares 5,3,2); None: equal, dealt in turn
# more languages (--languages english,bangla,hindi,...): an espeak-ng voice and a word list each
LANGUAGE_CODES = {  # name -> ISO 639-1: the espeak-ng voice and the wordfreq list of that code
    "hindi": "hi", "urdu": "ur", "tamil": "ta", "telugu": "te", "kannada": "kn", "malayalam": "ml",
    "marathi": "mr", "gujarati": "gu", "punjabi": "pa", "nepali": "ne", "spanish": "es", "french": "fr",
    "german": "de", "italian": "it", "portuguese": "pt", "dutch": "nl", "polish": "pl", "russian": "ru",
    "turkish": "tr", "arabic": "ar", "indonesian": "id", "vietnamese": "vi",
}
EXTRA_VOICES = {"spanish": ("es", "es-419")}  # espeak-ng accents where a language has more than its code
LYRIC_WORDS = 400  # a new language's lyrics: its wordfreq list's most frequent words in its own script
WORDFREQ_PIN = "wordfreq==3.1.1"  # the word lists of every language beyond English and Bangla
# -----------------------------------------------------------------------------
# singers: every distribution below is the same for both languages
VOICE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")  # espeak-ng variants
SHARED_PROFILES = True  # both languages get the very same (variant, pitch, speed) draws: no chance imbalance
SINGER_HZ = {"m": (110.0, 165.0), "f": (200.0, 300.0)}  # singer's centre note, Hz, by the variant's gender
SPEED_RANGE = (120, 170)  # singer's speed, espeak words per minute (before stretching words to their notes)
ENGLISH_VOICES = ("en-us", "en")  # espeak-ng voices for English singers (American, British)
BANGLA_VOICES = ("bn",)  # espeak-ng voice for Bangla singers (reads Bengali script)
MELODY_STEPS = (-4, 4)  # melody span in scale steps around the singer's centre note (about -7..+7 semitones)
VIBRATO_CENTS = 25.0  # vibrato depth on the whole vocal
VIBRATO_HZ = 5.5  # vibrato rate
VOCAL_REVERB_WET = (0.15, 0.35)  # share of reverb in the vocal
# -----------------------------------------------------------------------------
# arrangement and mix
STYLES = ("ballad", "pop", "rock", "folk", "electronic")  # accompaniment styles, uniform per song
TEMPO_RANGE = (70.0, 150.0)  # beats per minute, uniform per song, independent of style and language
VOCAL_LEVEL_DB = (-6.0, 4.0)  # vocal RMS over accompaniment RMS across the song, dB; below 0 the music is louder
MIX_RMS_DBFS = -20.0  # every mix is scaled to this RMS, the same for both languages
INTRO_BARS = (1, 4)  # instrumental bars before the first verse
VERSE_LINES = 4  # lines per verse (2 bars each); a chorus is 2 lines sung twice
LINE_WORDS = 10  # words drawn per line; as many are sung as fit in its 2 bars
FADE_OUT_SECONDS = 2.0  # every song ends with a fade of this length
WORKERS = os.cpu_count() or 1  # processes rendering songs in parallel
# -----------------------------------------------------------------------------
# real voices (--voices DIR: <language>/<speaker>/*.wav|flac): a speaker's recordings as the vocal
VOICE_EXTENSIONS = (".wav", ".flac")  # recordings read from the voices folder (any rate, mono or stereo)
VOICE_BANDLIMIT_HZ = 8000  # every recording goes through 2 x this rate and back: one channel for all sources
VOICE_RMS_DBFS = -20.0  # each utterance is scaled to this RMS before the song's vocal level is applied
VOICE_GAP_SECONDS = (0.3, 1.2)  # silence between a speaker's utterances, uniform per gap
VOCALS = True  # False (--no-vocals): the same songs, accompaniment only (vocal level -inf), a chance-level control

# manifest.csv: the five columns build_dataset.py reads, then what each song was made of (the
# confounds a clustering may follow instead of language): voice = espeak variant (same list for
# both languages), pitch = singer's centre note in Hz, speed = espeak words per minute, style,
# tempo_bpm, vocal_level_db, key (0 = C major), duration_s, espeak_voice = language voice + variant
MANIFEST_COLUMNS = ["song_id", "language", "title", "artist", "path", "voice", "pitch", "speed",
                    "style", "tempo_bpm", "vocal_level_db", "key", "duration_s", "espeak_voice"]

# generator settings a caller may override: generate_demo(..., tempo_range=(60, 180))
DEFAULT_SETTINGS = dict(
    min_seconds=DEMO_MIN_SECONDS, max_seconds=DEMO_MAX_SECONDS,
    artists_per_language=ARTISTS_PER_LANGUAGE, voice_variants=VOICE_VARIANTS,
    shared_profiles=SHARED_PROFILES, singer_hz=SINGER_HZ, speed_range=SPEED_RANGE,
    english_voices=ENGLISH_VOICES, bangla_voices=BANGLA_VOICES, melody_steps=MELODY_STEPS,
    vibrato_cents=VIBRATO_CENTS, vibrato_hz=VIBRATO_HZ, vocal_reverb_wet=VOCAL_REVERB_WET,
    styles=STYLES, tempo_range=TEMPO_RANGE, vocal_level_db=VOCAL_LEVEL_DB,
    mix_rms_dbfs=MIX_RMS_DBFS, intro_bars=INTRO_BARS, verse_lines=VERSE_LINES,
    line_words=LINE_WORDS, fade_out_seconds=FADE_OUT_SECONDS,
    vocals=VOCALS, voice_gap_seconds=VOICE_GAP_SECONDS, voice_bandlimit_hz=VOICE_BANDLIMIT_HZ,
    languages=None, language_shares=LANGUAGE_SHARES,  # None: LANGUAGES (espeak), every folder (--voices)
)
# settings added after corpora were first written: a recipe names them only when they differ from
# the default, so a folder made before they existed still counts as the same corpus
LATER_SETTINGS = ("vocals", "voice_gap_seconds", "voice_bandlimit_hz", "languages", "language_shares")

# -----------------------------------------------------------------------------
# words: common words of each language; Bangla in Bengali script for espeak-ng
ENGLISH_WORDS = """love heart night day baby you me my your we our together forever never always
again tonight tomorrow yesterday time world life dream dreams light dark fire rain sun moon star
stars sky blue gold river ocean road home away back down up over under inside open close hold
take give want need know feel see say tell call come go stay run fall fly dance sing cry smile
laugh breathe wait remember forget believe hope lost found alone lonely beautiful sweet wild free
young old new broken golden silent shining burning falling dancing waiting running summer winter
morning evening midnight city street window door hand hands eyes face voice song words kiss touch
only just still every nothing something everything someone nobody here there where when why how
little more last first oh yeah hey so true real mine yours heaven angel soul mind wings high low
slow fast long deep cold warm shine wonder story tears memory promise""".split()

BANGLA_WORDS = """আমি তুমি তোমার আমার আমরা ভালোবাসা ভালোবাসি মন হৃদয় আকাশ মেঘ বৃষ্টি রাত দিন সকাল
সন্ধ্যা চাঁদ সূর্য তারা নদী সাগর পাখি ফুল গান সুর কথা স্বপ্ন চোখ হাত পথ বাড়ি ঘর জীবন সময় আলো
অন্ধকার হাওয়া বাতাস মাটি গ্রাম শহর বন্ধু প্রিয় একা সাথে কাছে দূরে আজ কাল এখন আবার শুধু কেন
কোথায় যদি তবু না চলো এসো থাকো দেখো শোনো বলো গাও হাসি কান্না দুঃখ সুখ নতুন পুরনো সুন্দর লাল
নীল সবুজ সোনার রঙ মায়া প্রাণ মনে পড়ে জানি জানো চাই পাই খুঁজি হারাই ভাসি উড়ে যাই আসে ডাকে
জাগে নাচে ঝরে বাজে ভুলে মিলে রে ও এই সেই কত অনেক সব কেউ কিছু প্রেম মধুর বসন্ত শ্রাবণ বর্ষা
জোছনা কোকিল নৌকা ঢেউ বাঁশি মা দেশ বাংলা তোমাকে আমাকে তোমায় আমায় ছাড়া জন্য মতো বুকে ঠিকানা
অচেনা চেনা পাগল মনের আকাশে দুজনে হারিয়ে খুঁজে পেয়েছি কাঁদে হাসে""".split()

# titles: English like real ones; Bangla romanized as real ones are, with the Bengali to sing
EN_TITLE_ADJ = """Midnight Golden Broken Summer Silver Wild Lonely Electric Endless Secret Faded Burning
Sweet Blue Little Northern Quiet Neon Paper Crystal""".split()
EN_TITLE_NOUN = """Rain Heart Lights Dreams Road Fire Sky River Love Night Wings Eyes Roses Ocean
Highway Stars Hearts Summer Angel Memories""".split()
EN_TITLE_VERB = "Hold Take Love Call Show Bring Save Tell Lead Keep".split()
EN_TITLE_END = "Close Home Tonight Again Back Now Forever Higher".split()
EN_TITLE_PHRASES = ["All I Want", "One More Night", "Never Let Go", "Wherever You Go",
                    "Under the Stars", "Stay With Me", "Without You", "Here We Are",
                    "Dancing in the Dark", "Come Back Home", "Say You Will", "Lost in Your Eyes",
                    "Before the Morning", "When the Night Comes", "Hearts on Fire",
                    "Running Back to You", "Nothing Else Matters", "Only Love", "Fly Away",
                    "Still Believe"]
BN_TITLE_POSS = [("তোমার", "Tomar"), ("আমার", "Amar"), ("মনের", "Moner"), ("প্রাণের", "Praner"),
                 ("সোনার", "Shonar"), ("নীল", "Neel"), ("মেঘলা", "Meghla"), ("রঙিন", "Rongin"),
                 ("অচেনা", "Ochena"), ("শেষ", "Shesh"), ("প্রথম", "Prothom"), ("একলা", "Ekla")]
BN_TITLE_NOUN = [("আকাশ", "Akash"), ("গান", "Gaan"), ("কথা", "Kotha"), ("স্বপ্ন", "Shopno"),
                 ("নদী", "Nodi"), ("ঠিকানা", "Thikana"), ("চিঠি", "Chithi"), ("পাখি", "Pakhi"),
                 ("বৃষ্টি", "Brishti"), ("জোছনা", "Jochhona"), ("ভালোবাসা", "Bhalobasha"),
                 ("দুপুর", "Dupur"), ("বিকেল", "Bikel"), ("শহর", "Shohor"), ("বাঁশি", "Banshi"),
                 ("মেঘ", "Megh"), ("আলো", "Alo"), ("পথ", "Poth")]
BN_TITLE_PHRASES = [
    [("আমি", "Ami"), ("তোমাকে", "Tomake"), ("ভালোবাসি", "Bhalobashi")],
    [("তুমি", "Tumi"), ("এলে", "Ele")], [("মন", "Mon"), ("চায়", "Chay")],
    [("কেন", "Keno"), ("এমন", "Emon"), ("হয়", "Hoy")], [("ফিরে", "Phire"), ("এসো", "Esho")],
    [("বৃষ্টি", "Brishti"), ("ভেজা", "Bheja"), ("রাত", "Raat")], [("তোমায়", "Tomay"), ("খুঁজি", "Khuji")],
    [("চলো", "Cholo"), ("হারিয়ে", "Hariye"), ("যাই", "Jai")],
    [("শুধু", "Shudhu"), ("তোমার", "Tomar"), ("জন্য", "Jonno")], [("আজ", "Aaj"), ("রাতে", "Raate")],
    [("মনে", "Mone"), ("পড়ে", "Pore")], [("একলা", "Ekla"), ("পথে", "Pothe")],
    [("তুমি", "Tumi"), ("আমার", "Amar")], [("ভালো", "Bhalo"), ("থেকো", "Theko")],
]
NAMES = {
    ("english", "f"): "Emma Olivia Grace Lily Hannah Chloe Sophie Ruby Ella Madison Claire Natalie".split(),
    ("english", "m"): "James Jack Ryan Tyler Liam Noah Daniel Luke Owen Ethan Caleb Mason".split(),
    ("bangla", "f"): "Nusrat Farzana Sabina Runa Anusheh Kona Nazia Shreya Tahmina Rupa Mousumi Lopa".split(),
    ("bangla", "m"): "Tahsan Habib Imran Arnob Shayan Rupam Fahim Tanvir Minar Sajid Anupam Rafiq".split(),
}
NAMES.update({
    ("hindi", "f"): "Shreya Sunidhi Neha Kavita Alka Palak Asha Monali".split(),
    ("hindi", "m"): "Arijit Sonu Mohit Kailash Shaan Udit Javed Armaan".split(),
    ("tamil", "f"): "Chinmayi Shweta Saindhavi Harini Vaikom Anuradha Bombay Sudha".split(),
    ("tamil", "m"): "Sid Haricharan Karthik Vijay Anirudh Pradeep Unni Srinivas".split(),
    ("telugu", "f"): "Sunitha Geetha Mangli Ramya Mohana Kalpana Sravana Usha".split(),
    ("telugu", "m"): "Sid Hemachandra Revanth Anurag Dhanunjay Sreerama Kaala Ramu".split(),
    ("kannada", "f"): "Anuradha Shamitha Supriya Sangeetha Indu Archana Nanditha Vani".split(),
    ("kannada", "m"): "Vijay Rajesh Sanjith Armaan Raghu Santhosh Kunal Hemanth".split(),
    ("marathi", "f"): "Bela Savani Aarya Vaishali Ketaki Madhura Shalmali Anandi".split(),
    ("marathi", "m"): "Ajay Avadhoot Swapnil Rohit Adarsh Mangesh Rahul Hrishikesh".split(),
    ("urdu", "f"): "Abida Hadiqa Quratulain Aima Momina Natasha Zeb Iqbal".split(),
    ("urdu", "m"): "Atif Ali Rahat Shafqat Asim Bilal Farhan Sajjad".split(),
    ("spanish", "f"): "Lucia Carmen Sofia Elena Marta Paula Rosalia Ines".split(),
    ("spanish", "m"): "Pablo Alejandro Diego Javier Manuel Sergio Andres Carlos".split(),
    ("german", "f"): "Lena Helene Sarah Anna Julia Nena Marie Clara".split(),
    ("german", "m"): "Max Tim Mark Felix Jonas Lukas Herbert Peter".split(),
    ("french", "f"): "Camille Louane Zaz Julie Claire Amel Chloe Lea".split(),
    ("french", "m"): "Julien Louis Vianney Thomas Hugo Kendji Benjamin Nicolas".split(),
})
SURNAMES = {
    "english": "Carter Hayes Brooks Bennett Collins Morgan Parker Reed Foster Walsh Turner Hughes".split(),
    "bangla": "Islam Hossain Ahmed Chowdhury Rahman Sen Das Roy Khan Haque Sarkar Bose".split(),
    "hindi": "Sharma Ghoshal Kumar Chauhan Yagnik Singh Kakkar Malik".split(),
    "tamil": "Sriram Rajan Iyer Subramaniam Ravichander Krishnan Menon Raghavan".split(),
    "telugu": "Reddy Rao Naidu Sastry Varma Chowdary Kumar Prasad".split(),
    "kannada": "Prakash Gowda Hegde Shetty Bhat Rao Murthy Kulkarni".split(),
    "marathi": "Deshpande Joshi Patil Kulkarni Gokhale Phadke Apte Shinde".split(),
    "urdu": "Khan Aslam Fateh Amanat Qureshi Hussain Mirza Butt".split(),
    "spanish": "Garcia Martinez Lopez Sanchez Romero Navarro Torres Ortega".split(),
    "german": "Muller Schmidt Fischer Weber Wagner Becker Hoffmann Forster".split(),
    "french": "Martin Bernard Dubois Moreau Laurent Girard Lefevre Mercier".split(),
}

# music theory
MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
PROGRESSIONS = [(0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 4, 3), (0, 3, 0, 4),
                (5, 4, 3, 4), (3, 0, 4, 5), (0, 2, 3, 4)]  # scale degrees, one chord per bar


# -----------------------------------------------------------------------------
# espeak-ng through ctypes, one engine per process
AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: samples go to the callback, Synth returns when done
INITIALIZE_DONT_EXIT = 0x8000  # report errors instead of exiting the process
POS_CHARACTER, CHARS_UTF8 = 1, 1
ESPEAK_RATE = 1  # espeak_PARAMETER
ESPEAK_MIN_RATE, ESPEAK_MAX_RATE = 80, 450  # words per minute espeak-ng accepts
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    """espeak-ng in retrieval mode: say(text) returns float32 samples at 22,050 Hz."""

    def __init__(self):
        import espeakng_loader
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_ng_SetConstF0.argtypes = [ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                     espeakng_loader.get_data_path().encode(), INITIALIZE_DONT_EXIT)
        if rate != SAMPLE_RATE:
            raise common.PipelineError(f"espeak-ng failed to start (returned {rate}); "
                                       "reinstall it with `pip install espeakng-loader`")
        self.lib, self.chunks, self.voice, self.rate = lib, [], None, None
        lib.espeak_ng_SetRandSeed(0)  # espeak seeds its noise from the clock otherwise
        self.callback = _SYNTH_CALLBACK(self._collect)  # kept referenced: espeak holds the pointer
        lib.espeak_SetSynthCallback(self.callback)
        self.pid = os.getpid()

    def _collect(self, wav, n, events):
        if n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def set_voice(self, name):
        if name != self.voice:
            if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
                raise common.PipelineError(f"espeak-ng has no voice {name!r}")
            self.voice, self.rate = name, None

    def say(self, text, hz=0, rate=150):
        """Synthesize `text` with the current voice, on the constant f0 `hz` (0: espeak's own intonation)."""
        rate = int(np.clip(rate, ESPEAK_MIN_RATE, ESPEAK_MAX_RATE))
        if rate != self.rate:
            self.lib.espeak_SetParameter(ESPEAK_RATE, rate, 0)
            self.rate = rate
        self.lib.espeak_ng_SetConstF0(int(round(hz)))
        data = text.encode("utf-8") + b"\0"
        self.chunks = []
        err = self.lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if err != 0:
            raise common.PipelineError(f"espeak-ng could not synthesize {text!r} (error {err})")
        if not self.chunks:
            return np.zeros(0, np.float32)
        return np.concatenate(self.chunks).astype(np.float32) / 32768.0


_ENGINE = None


def engine():
    """This process's espeak-ng (each worker builds its own on first use)."""
    global _ENGINE
    if _ENGINE is None or _ENGINE.pid != os.getpid():
        _ENGINE = Espeak()
    return _ENGINE


# -----------------------------------------------------------------------------
# languages: English and Bangla are built in; any other takes its espeak-ng voice and its words by code
_WORDS = {"english": ENGLISH_WORDS, "bangla": BANGLA_WORDS}  # this process's word lists, by language


def language_code(lang):
    """ISO 639-1 code of a language beyond the built-in two, or a one-line error naming the known ones."""
    if lang not in LANGUAGE_CODES:
        known = ", ".join(list(LANGUAGES) + sorted(LANGUAGE_CODES))
        raise common.PipelineError(f"demo_corpus knows no language {lang!r}; known: {known} "
                                   "(add a name -> ISO code to LANGUAGE_CODES)")
    return LANGUAGE_CODES[lang]


def language_voices(lang, settings):
    """The espeak-ng voices (accents) a language's singers draw from."""
    if lang == "english":
        return settings["english_voices"]
    if lang == "bangla":
        return settings["bangla_voices"]
    return EXTRA_VOICES.get(lang, (language_code(lang),))


def word_script(word):
    """The Unicode script of a word's letters and marks (LATIN, DEVANAGARI, TAMIL...), or None if mixed."""
    import unicodedata
    if not word or not all(unicodedata.category(c)[0] in "LM" for c in word):
        return None  # digits, punctuation, apostrophes
    scripts = {unicodedata.name(c, "?").split()[0] for c in word}
    return scripts.pop() if len(scripts) == 1 else None


def wordfreq_words(code, n=LYRIC_WORDS):
    """A language's n most frequent words in its own script (wordfreq's list; English loan words left out)."""
    try:
        import wordfreq
    except ImportError:
        raise common.PipelineError(f"languages beyond English and Bangla take their words from wordfreq: "
                                   f"pip install {WORDFREQ_PIN}")
    if code not in wordfreq.available_languages(wordlist="best"):
        # top_n_list would answer with the nearest language's words (English for Telugu): refuse instead
        raise common.PipelineError(f"wordfreq has no word list for {code!r}; it has: "
                                   + ", ".join(sorted(wordfreq.available_languages(wordlist="best"))))
    top = wordfreq.top_n_list(code, 3 * n)
    scripts = [word_script(w) for w in top]
    main = max(set(scripts) - {None}, key=scripts.count)  # the language's own script, by majority
    return [w for w, sc in zip(top, scripts) if sc == main and len(w) >= 2][:n]


def language_words(lang):
    """Words the singers of `lang` sing (built-in lists for English and Bangla, wordfreq's for others)."""
    if lang not in _WORDS:
        _WORDS[lang] = wordfreq_words(language_code(lang))
    return _WORDS[lang]


def check_espeak_voice(name):
    """A one-line error before any rendering when espeak-ng's data has no voice of this name."""
    import espeakng_loader
    root = Path(espeakng_loader.get_data_path()) / "lang"
    if not any(f.name.lower() == name.lower() for f in root.rglob("*") if f.is_file()):
        raise common.PipelineError(f"espeak-ng has no voice {name!r} (see {root})")


def corpus_languages(settings, available=None):
    """The languages of a corpus, in order: the `languages` setting, else LANGUAGES (or every voices folder)."""
    langs = settings["languages"]
    if langs is None:
        return tuple(LANGUAGES) if available is None else tuple(sorted(available))
    if available is not None:
        missing = [lang for lang in langs if lang not in available]
        if missing:
            raise common.PipelineError(f"the voices folder has no {', '.join(missing)}; it has: "
                                       + ", ".join(sorted(available)))
    return tuple(langs)


def share_counts(n_songs, shares):
    """Songs per language from relative shares, by largest remainder (ties go to the earlier language)."""
    shares = np.asarray(shares, dtype=np.float64)
    exact = n_songs * shares / shares.sum()
    counts = np.floor(exact).astype(int)
    rest = np.argsort(-(exact - counts), kind="stable")[: n_songs - counts.sum()]
    counts[rest] += 1
    return counts


def deal_languages(n_songs, languages, shares, rng):
    """Every song's language, shuffled: in turn (equal sizes) or by share_counts (a real library's mix)."""
    if shares is None:
        return np.array([languages[i % len(languages)] for i in range(n_songs)])[rng.permutation(n_songs)]
    if len(shares) != len(languages):
        raise common.PipelineError(f"{len(shares)} language_shares for {len(languages)} languages "
                                   f"({', '.join(languages)}): give one share per language, in this order")
    return np.repeat(np.array(languages), share_counts(n_songs, shares))[rng.permutation(n_songs)]


# -----------------------------------------------------------------------------
# the plan: every song's metadata, drawn from the seed and settings only (not from the disk)
def resolve_settings(overrides):
    settings = dict(DEFAULT_SETTINGS)
    for key, value in overrides.items():
        k = key.lower()
        if k not in settings:
            raise common.PipelineError(f"unknown demo setting {key!r}; valid: {', '.join(sorted(settings))}")
        settings[k] = tuple(value) if isinstance(value, list) else value
    lo, hi = settings["min_seconds"], settings["max_seconds"]
    if not 20 <= lo <= hi:  # shorter songs have no room for a sung phrase
        raise common.PipelineError(f"demo song length must satisfy 20 <= min <= max seconds, got {lo}, {hi}")
    if settings["artists_per_language"] < 1:
        raise common.PipelineError("artists_per_language must be at least 1")
    langs, shares = settings["languages"], settings["language_shares"]
    if isinstance(langs, str):
        settings["languages"] = langs = tuple(x for x in langs.split(",") if x.strip())
    if langs is not None:
        settings["languages"] = langs = tuple(str(x).strip().lower() for x in langs)
        if len(langs) < 1 or len(set(langs)) != len(langs):
            raise common.PipelineError(f"languages must name each language once, got {', '.join(langs)}")
    if isinstance(shares, str):
        shares = tuple(x for x in shares.split(",") if x.strip())
    if shares is not None:
        try:
            settings["language_shares"] = shares = tuple(float(x) for x in shares)
        except (TypeError, ValueError):
            raise common.PipelineError(f"language_shares must be numbers, got {shares!r}")
        if not all(np.isfinite(x) and x > 0 for x in shares):
            raise common.PipelineError(f"language_shares must be positive, got {shares}")
    return settings


def english_title(rng):
    kind = rng.integers(4)
    if kind == 0:
        return f"{rng.choice(EN_TITLE_ADJ)} {rng.choice(EN_TITLE_NOUN)}"
    if kind == 1:
        return f"{rng.choice(EN_TITLE_VERB)} Me {rng.choice(EN_TITLE_END)}"
    if kind == 2:
        a, b = rng.choice(EN_TITLE_NOUN, size=2, replace=False)
        return f"{a} of {b}"
    return str(rng.choice(EN_TITLE_PHRASES))


def bangla_title(rng):
    """(romanized title, Bengali words to sing)."""
    if rng.random() < 0.55:
        pairs = [BN_TITLE_POSS[rng.integers(len(BN_TITLE_POSS))], BN_TITLE_NOUN[rng.integers(len(BN_TITLE_NOUN))]]
    else:
        pairs = BN_TITLE_PHRASES[rng.integers(len(BN_TITLE_PHRASES))]
    return " ".join(r for _, r in pairs), [b for b, _ in pairs]


def artist_names(lang, gender):
    """First names for a language's singers (a language without a list gets generic ones)."""
    return NAMES.get((lang, gender)) or [f"{lang.title()}{gender.upper()}{k}" for k in range(1, 9)]


def artist_surnames(lang):
    return SURNAMES.get(lang) or ["Singer"]


def other_title(rng, lang):
    """(title, words to sing) for a language beyond English and Bangla: two of its words, as written."""
    words = language_words(lang)
    sung = [str(w) for w in rng.choice(words, size=int(rng.integers(1, 3)), replace=False)]
    title = " ".join(w.capitalize() if word_script(w) == "LATIN" else w for w in sung)
    return title, sung


def make_artists(rng, settings, languages=LANGUAGES):
    """ARTISTS_PER_LANGUAGE singers per language, voice profiles from the same distributions."""
    n = settings["artists_per_language"]
    variants = list(settings["voice_variants"])

    def profiles():
        v = [variants[i % len(variants)] for i in rng.permutation(max(n, len(variants)))[:n]]
        lo_hi = [settings["singer_hz"]["f" if x.startswith("f") else "m"] for x in v]
        pitch = [np.exp(rng.uniform(np.log(lo), np.log(hi))) for lo, hi in lo_hi]  # uniform in log frequency
        speed = rng.integers(settings["speed_range"][0], settings["speed_range"][1] + 1, size=n)
        return [dict(voice=str(v[i]), pitch=round(float(pitch[i]), 1), speed=int(speed[i])) for i in range(n)]

    shared = profiles() if settings["shared_profiles"] else None
    artists = {}
    for lang in languages:
        profs = shared if shared is not None else profiles()
        voices = language_voices(lang, settings)
        used, out = set(), []
        for prof in profs:
            gender = "f" if prof["voice"].startswith("f") else "m"
            while True:  # a name not taken yet in this language
                name = f"{rng.choice(artist_names(lang, gender))} {rng.choice(artist_surnames(lang))}"
                if name not in used or len(used) > 100:
                    break
            used.add(name)
            accent = str(voices[rng.integers(len(voices))])
            out.append(dict(prof, artist=name, language=lang, espeak_voice=f"{accent}+{prof['voice']}"))
        artists[lang] = out
    return artists


def plan_corpus(n_songs, seed, settings):
    """One dict per song: everything needed to render it, and its manifest row."""
    languages = corpus_languages(settings)
    for lang in languages:  # a one-line error now, not in a worker half-way through the corpus
        language_words(lang)
        for voice in language_voices(lang, settings) if lang not in LANGUAGES else ():
            check_espeak_voice(voice)
    rng = np.random.default_rng([seed, 7919])  # corpus-level draws: artists, language order, titles
    artists = make_artists(rng, settings, languages)
    langs = deal_languages(n_songs, languages, settings["language_shares"], rng)
    dealt = {lang: 0 for lang in languages}
    order = {lang: rng.permutation(settings["artists_per_language"]) for lang in languages}
    titles, songs = set(), []
    for i, lang in enumerate(langs):
        k = dealt[lang]
        dealt[lang] += 1
        artist = artists[lang][order[lang][k % len(order[lang])]]
        for _ in range(50):  # titles unique within the corpus where the lists allow
            if lang == "english":
                title, sung = english_title(rng), None
            else:
                title, sung = bangla_title(rng) if lang == "bangla" else other_title(rng, lang)
            if title not in titles:
                break
        titles.add(title)
        if sung is None:
            sung = title.lower().split()
        # song-level draws come from the song's own generator: independent of language
        srng = np.random.default_rng([seed, i])
        song = dict(
            index=i, seed=seed, song_id=f"demo_{i + 1:04d}", language=str(lang), title=title,
            title_words=sung, artist=artist["artist"], voice=artist["voice"], pitch=artist["pitch"],
            speed=artist["speed"], espeak_voice=artist["espeak_voice"],
            style=str(settings["styles"][srng.integers(len(settings["styles"]))]),
            tempo_bpm=round(float(srng.uniform(*settings["tempo_range"])), 1),
            vocal_level_db=round(float(srng.uniform(*settings["vocal_level_db"])), 2),
            key=int(srng.integers(12)),
            duration_s=round(float(srng.uniform(settings["min_seconds"], settings["max_seconds"])), 2),
        )
        song["path"] = f"{song['song_id']}.wav"
        songs.append(song)
    return mute(songs, settings)


def mute(songs, settings):
    """vocals=False: the same songs (every draw kept), with no vocal: its level is -inf dB."""
    if not settings["vocals"]:
        for song in songs:
            song["vocal_level_db"] = float("-inf")
    return songs


# -----------------------------------------------------------------------------
# real voices: <voices>/<language>/<speaker>/*.wav|flac, a speaker's recordings as a song's vocal
def find_voices(voices_dir):
    """{language: {speaker: [recording paths]}}, sorted; unreadable files are left out with a line."""
    root = Path(voices_dir)
    layout = "a folder of <language>/<speaker>/*.wav (or .flac)"
    if not root.is_dir():
        raise common.PipelineError(f"voices folder {root} not found: give {layout}")
    subdirs = lambda d: sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))  # noqa: E731
    found = {}
    for lang_dir in subdirs(root):
        speakers = {}
        for spk_dir in subdirs(lang_dir):
            files = []
            for f in sorted(spk_dir.rglob("*")):
                if f.suffix.lower() not in VOICE_EXTENSIONS or f.name.startswith(".") or not f.is_file():
                    continue
                try:
                    info = sf.info(str(f))
                    if info.frames == 0:
                        raise ValueError("no samples")
                except Exception as e:  # a broken file costs one line, not the corpus
                    msg = " ".join(str(e).split())
                    print(f"skipped voice {f}: unreadable ({msg}); convert it to WAV or FLAC, or remove it",
                          file=sys.stderr)
                    continue
                files.append(str(f.absolute()))  # not resolved: a linked file stays below the folder
            if files:
                speakers[spk_dir.name] = files
            else:
                print(f"skipped speaker {spk_dir}: no readable {' or '.join(VOICE_EXTENSIONS)} recordings",
                      file=sys.stderr)
        if speakers:
            found[lang_dir.name] = speakers
    if not found:
        raise common.PipelineError(f"{root} holds no speaker folder with recordings: give {layout}")
    return found


def voices_fingerprint(voices, root):
    """What the recipe records of a voices folder: every file's path below the folder, and its size."""
    root = Path(root).absolute()
    return {lang: {spk: [[Path(f).relative_to(root).as_posix(), Path(f).stat().st_size] for f in files]
                   for spk, files in spk_files.items()}
            for lang, spk_files in voices.items()}


def plan_voice_corpus(n_songs, seed, settings, voices):
    """Like plan_corpus, with recorded speakers as the singers: language = folder, artist = speaker.

    Languages alternate as in the synthesized demo (then shuffled); each language's speakers are
    dealt in a seeded order, cycling. Song i draws style, tempo, vocal level, key and length from
    the very Generator([seed, i]) of the synthesized demo's song i, so the accompaniment matches.
    """
    rng = np.random.default_rng([seed, 7919, 2])
    languages = corpus_languages(settings, available=voices)
    langs = deal_languages(n_songs, languages, settings["language_shares"], rng)
    speakers = {lang: sorted(voices[lang]) for lang in languages}
    order = {lang: rng.permutation(len(speakers[lang])) for lang in languages}
    shared = {spk for lang in languages for spk in speakers[lang]
              if sum(spk in speakers[other] for other in languages) > 1}  # one name, two languages
    dealt = {lang: 0 for lang in languages}
    songs = []
    for i, lang in enumerate(langs):
        k = dealt[lang]
        dealt[lang] += 1
        spk = speakers[lang][order[lang][k % len(order[lang])]]
        if lang == "english":
            title = english_title(rng)
        elif lang == "bangla":
            title = bangla_title(rng)[0]
        else:
            title = f"{lang.title()} Song {k + 1}"
        srng = np.random.default_rng([seed, i])
        song = dict(
            index=i, seed=seed, song_id=f"demo_{i + 1:04d}", language=str(lang), title=title, title_words=[],
            artist=f"{spk} ({lang})" if spk in shared else spk, voice="recording", pitch=float("nan"),
            speed=float("nan"), espeak_voice="",
            style=str(settings["styles"][srng.integers(len(settings["styles"]))]),
            tempo_bpm=round(float(srng.uniform(*settings["tempo_range"])), 1),
            vocal_level_db=round(float(srng.uniform(*settings["vocal_level_db"])), 2),
            key=int(srng.integers(12)),
            duration_s=round(float(srng.uniform(settings["min_seconds"], settings["max_seconds"])), 2),
            voice_files=list(voices[lang][spk]),
        )
        song["path"] = f"{song['song_id']}.wav"
        songs.append(song)
    return mute(songs, settings)


def load_voice(path, bandlimit_hz=VOICE_BANDLIMIT_HZ):
    """One recording as float32 mono at SAMPLE_RATE: band-limited, trimmed, scaled to VOICE_RMS_DBFS.

    Band-limiting goes through a 2 x bandlimit_hz sample rate (polyphase filters), so recordings
    from any source share one channel; an empty or silent file gives an empty array.
    """
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    mid = int(2 * bandlimit_hz)
    for a, b in ((sr, mid), (mid, SAMPLE_RATE)):
        if a != b:
            g = math.gcd(a, b)
            y = signal.resample_poly(y, b // g, a // g).astype(np.float32)
    peak = float(np.abs(y).max()) if len(y) else 0.0
    if peak == 0.0 or not np.isfinite(peak):
        return np.zeros(0, np.float32)
    y = trim(y)
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    return (y * (10 ** (VOICE_RMS_DBFS / 20) / rms)).astype(np.float32)


def spoken_vocal(song, settings, form, bar, n):
    """The song's vocal from its speaker's recordings: utterances in a seeded order, short gaps between.

    It starts after the intro and stops a second before the fade-out, like the sung vocal; the
    recordings cycle (in a new order each round) until the span is full.
    """
    sr = SAMPLE_RATE
    vrng = np.random.default_rng([song["seed"], song["index"], 2])  # not the accompaniment's generator
    files = song["voice_files"]
    n_intro = next((b for b, sec in enumerate(form) if sec != "intro"), len(form))
    pos = int(n_intro * bar * sr)
    end = min(n, int((song["duration_s"] - settings["fade_out_seconds"] - 1.0) * sr))
    vocal = np.zeros(n, np.float32)
    loaded, queue, empty = {}, [], set()
    while pos < end and len(empty) < len(files):
        if not queue:
            queue = [int(j) for j in vrng.permutation(len(files))]
        j = queue.pop(0)
        if j not in loaded:
            loaded[j] = load_voice(files[j], settings["voice_bandlimit_hz"])
        y = loaded[j]
        if len(y) == 0:
            empty.add(j)
            continue
        y = y[: end - pos].copy()
        fade = min(int(0.02 * sr), len(y))
        y[len(y) - fade:] *= np.linspace(1, 0, fade, dtype=np.float32)  # no click where the span ends
        place(vocal, pos, y)
        pos += len(y) + int(vrng.uniform(*settings["voice_gap_seconds"]) * sr)
    return vocal


# -----------------------------------------------------------------------------
# instruments: additive synthesis, each distinct note rendered once per song and reused
def midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69) / 12)


def additive(freqs, seconds, amps, decays, attack=0.005, release=0.05, detune=0.0, phase_rng=None):
    """Sum of harmonics k*f of every f in freqs, harmonic k with amplitude amps[k-1] decaying at decays[k-1]/s."""
    n = max(int(seconds * SAMPLE_RATE), 1)
    t = np.arange(n, dtype=np.float32) / SAMPLE_RATE
    k = np.arange(1, len(amps) + 1)
    f = (np.atleast_1d(freqs)[:, None] * k[None, :]).ravel()
    a = np.tile(np.asarray(amps, np.float32), len(np.atleast_1d(freqs)))
    d = np.tile(np.asarray(decays, np.float32), len(np.atleast_1d(freqs)))
    keep = f < 9000.0
    f, a, d = f[keep], a[keep], d[keep]
    if detune:
        f = np.concatenate([f * (1 - detune), f * (1 + detune)])
        a, d = np.concatenate([a, a]) * 0.7, np.concatenate([d, d])
    ph = phase_rng.uniform(0, 2 * np.pi, len(f)) if phase_rng is not None else np.zeros(len(f))
    partials = np.sin(2 * np.pi * f[:, None].astype(np.float32) * t[None, :] + ph[:, None].astype(np.float32))
    partials *= (a[:, None] * np.exp(-d[:, None] * t[None, :]))
    y = partials.sum(axis=0)
    env = np.minimum(1.0, t / attack) * np.minimum(1.0, (seconds - t) / release).clip(0, 1)
    return (y * env).astype(np.float32)


def instrument(name, midis, seconds, rng):
    """One note or chord of a named instrument."""
    f = midi_hz(midis)
    k = np.arange(1, 13)
    if name == "piano":
        return additive(f, seconds, 1 / k[:8] ** 1.3, 1.2 + 0.9 * k[:8], release=0.08, phase_rng=rng)
    if name == "pad":
        return additive(f, seconds, 1 / k[:8] ** 1.4, 0.05 * k[:8], attack=min(0.3, seconds / 3),
                        release=min(0.3, seconds / 3), detune=0.003, phase_rng=rng)
    if name == "pluck":
        return additive(f, seconds, 1 / k[:10], 2.5 + 1.6 * k[:10], attack=0.002, phase_rng=rng)
    if name == "power":  # root, fifth, octave through a saturating amplifier
        y = additive(f, seconds, 1 / k[:10], 0.6 + 0.2 * k[:10], attack=0.004, detune=0.002, phase_rng=rng)
        return np.tanh(4.0 * y / (np.abs(y).max() + 1e-9)).astype(np.float32)
    if name == "organ":
        return additive(f, seconds, np.array([1, .6, .4, .2, .25, .1]), np.zeros(6) + 0.2, attack=0.02,
                        phase_rng=rng)
    if name == "bass":
        return additive(f, seconds, np.array([1, .5, .25, .12]), np.array([1.5, 2.5, 4, 6]), attack=0.004)
    if name == "sub":
        return additive(f, seconds, np.array([1, .15]), np.array([0.8, 1.0]), attack=0.003)
    if name == "rockbass":
        return additive(f, seconds, 1 / k[:7], 1.0 + 0.8 * k[:7], attack=0.003)
    if name == "arp":  # square-ish lead: odd harmonics
        return additive(f, seconds, np.array([1, 0, 1 / 3, 0, 1 / 5, 0, 1 / 7]), 3.0 + np.arange(7), attack=0.002)
    raise ValueError(name)


def drum_kit(rng, style):
    """Short one-shot drum sounds, drawn per song."""
    sr = SAMPLE_RATE
    t = np.arange(int(0.4 * sr)) / sr
    kick_top = rng.uniform(110, 170)
    sweep = 45 + (kick_top - 45) * np.exp(-t / 0.03)
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / sr) * np.exp(-t / rng.uniform(0.08, 0.18))
    ts = t[: int(0.25 * sr)]
    noise = rng.standard_normal(len(ts))
    snare = (0.8 * signal.lfilter([1, -0.6], [1], noise) * np.exp(-ts / rng.uniform(0.04, 0.09))
             + 0.5 * np.sin(2 * np.pi * rng.uniform(170, 220) * ts) * np.exp(-ts / 0.04))
    th = t[: int(0.12 * sr)]
    hat = np.diff(rng.standard_normal(len(th) + 1)) * np.exp(-th / rng.uniform(0.012, 0.03))
    open_hat = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t / 0.12)
    clap = signal.lfilter([1, -0.9], [1], rng.standard_normal(len(ts))) * (
        np.exp(-ts / 0.05) * (1 + 0.6 * np.sin(2 * np.pi * 90 * ts) ** 8))
    shaker = np.diff(rng.standard_normal(int(0.08 * sr) + 1)) * np.hanning(int(0.08 * sr))
    rim = np.sin(2 * np.pi * 1700 * th) * np.exp(-th / 0.008) + 0.3 * hat
    kit = dict(kick=kick, snare=snare, hat=hat * 0.5, open_hat=open_hat * 0.35, clap=clap,
               shaker=shaker * 0.4, rim=rim * 0.5)
    if style == "rock":
        kit["snare"] = np.tanh(2 * kit["snare"])
    return {k: (v / (np.abs(v).max() + 1e-9)).astype(np.float32) for k, v in kit.items()}


# drum patterns on 16 steps per bar: (sound, steps, gain)
DRUMS = {
    "ballad": [("kick", [0, 10], 0.8), ("rim", [4, 12], 0.5), ("hat", [0, 2, 4, 6, 8, 10, 12, 14], 0.25)],
    "pop": [("kick", [0, 6, 8], 0.9), ("snare", [4, 12], 0.7), ("clap", [4, 12], 0.3),
            ("hat", [0, 2, 4, 6, 8, 10, 12, 14], 0.3)],
    "rock": [("kick", [0, 8, 10], 1.0), ("snare", [4, 12], 0.9), ("open_hat", [0, 2, 4, 6, 8, 10, 12, 14], 0.35)],
    "folk": [("kick", [0, 8], 0.6), ("rim", [4, 12], 0.4), ("shaker", list(range(16)), 0.3)],
    "electronic": [("kick", [0, 4, 8, 12], 1.0), ("clap", [4, 12], 0.6), ("open_hat", [2, 6, 10, 14], 0.35),
                   ("hat", list(range(16)), 0.15)],
}
# harmony per style: (instrument, rhythm, gain); rhythm "hold" = one chord per bar, else 16-step onsets
HARMONY = {
    "ballad": [("piano", "arpeggio", 0.6), ("pad", "hold", 0.25)],
    "pop": [("pad", "hold", 0.35), ("piano", [0, 4, 8, 12], 0.35)],
    "rock": [("power", [0, 2, 4, 6, 8, 10, 12, 14], 0.45), ("organ", "hold", 0.12)],
    "folk": [("pluck", [0, 4, 6, 10, 12, 14], 0.6), ("pluck", "arpeggio", 0.2)],
    "electronic": [("pad", "hold", 0.35), ("arp", "arpeggio16", 0.22)],
}
BASS = {"ballad": ("bass", [0, 8]), "pop": ("bass", [0, 4, 8, 10, 12]),
        "rock": ("rockbass", [0, 2, 4, 6, 8, 10, 12, 14]), "folk": ("bass", [0, 8]),
        "electronic": ("sub", [2, 6, 10, 14])}


def chord_midis(key, degree, octave=4):
    """Triad on a scale degree of the major key, as MIDI notes from C of `octave`."""
    idx = np.array([degree, degree + 2, degree + 4])
    return 12 * (octave + 1) + key + MAJOR[idx % 7] + 12 * (idx // 7)


def place(out, start, buf, gain=1.0):
    """Add buf*gain into out at sample `start`, cut at the end of out."""
    if start >= len(out) or gain == 0:
        return
    end = min(len(out), start + len(buf))
    out[start:end] += gain * buf[: end - start]


# -----------------------------------------------------------------------------
# one song
def song_form(rng, n_bars, settings):
    """Section of every bar: intro, verse, chorus, break; vocals sing in verse and chorus bars."""
    form = ["intro"] * int(rng.integers(settings["intro_bars"][0], settings["intro_bars"][1] + 1))
    n_choruses = 0
    while len(form) < n_bars:
        form += ["verse"] * (2 * settings["verse_lines"]) + ["chorus"] * 8
        n_choruses += 1
        if n_choruses == 2:
            form += ["break"] * 4
    return form[:n_bars]


def melody(rng, chords, start_step, settings):
    """16 eighth notes of a 2-bar phrase in scale steps around the singer's centre; chord tones on beats."""
    lo, hi = settings["melody_steps"]
    notes, cur = [], start_step
    for slot in range(16):
        cur = int(np.clip(cur + rng.choice([-2, -1, 0, 1, 2], p=[.1, .25, .3, .25, .1]), lo, hi))
        if slot % 4 == 0:  # strong beats land on a tone of the bar's chord
            chord = {(chords[slot // 8] + j) % 7 for j in (0, 2, 4)}
            cands = [s for s in range(lo, hi + 1) if s % 7 in chord]
            cur = min(cands, key=lambda s: (abs(s - cur), s))
        notes.append(cur)
    return notes


def sing_phrase(tts, words, notes, step_hz, slot_len, rate, pickup, cache):
    """Sing `words` on the 16 eighth-note slots of a 2-bar phrase, one note per word: [(slot, audio)].

    A word starts on a slot, at the pitch of that slot's note, and holds as many slots as its
    natural length needs; words that do not fit before the last beat are left out.
    """
    placed, slot = [], pickup
    for word in words:
        if slot >= 14:
            break
        hz = int(round(step_hz(notes[slot])))
        key = (word, hz, rate)
        if key not in cache:
            cache[key] = trim(tts.say(word, hz=hz, rate=rate))
        natural = cache[key]
        if len(natural) == 0:
            continue
        n_slots = int(np.ceil(len(natural) / slot_len))
        if slot + n_slots > 15:
            break
        # stretch the word toward the notes it holds, as a singer holds the vowel
        target = 0.92 * n_slots * slot_len
        stretched_rate = int(np.clip(rate * len(natural) / target, ESPEAK_MIN_RATE, rate))
        key2 = (word, hz, stretched_rate)
        if key2 not in cache:
            cache[key2] = trim(tts.say(word, hz=hz, rate=stretched_rate))
        placed.append((slot, cache[key2]))
        slot += n_slots
    return placed


def trim(y, floor=0.02):
    """Cut the synthesizer's leading and trailing silence; short fades against clicks."""
    if len(y) == 0:
        return y
    loud = np.flatnonzero(np.abs(y) > floor * np.abs(y).max())
    y = y[max(loud[0] - 60, 0): loud[-1] + 200].copy()
    fade = min(100, len(y) // 4)
    if fade:
        ramp = np.linspace(0, 1, fade, dtype=np.float32)
        y[:fade] *= ramp
        y[-fade:] *= ramp[::-1]
    return y


def vibrato(y, cents, hz):
    """Frequency modulation of the whole vocal through a sinusoidally varying delay."""
    if cents <= 0:
        return y
    depth = (2 ** (cents / 1200) - 1) / (2 * np.pi * hz) * SAMPLE_RATE  # samples
    t = np.arange(len(y), dtype=np.float64)
    return np.interp(t - depth * (1 + np.sin(2 * np.pi * hz * t / SAMPLE_RATE)), t, y).astype(np.float32)


def reverb(y, rng, wet, seconds=1.2):
    """Decaying noise as an impulse response; oaconvolve keeps it fast on whole songs."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    ir = rng.standard_normal(len(t)) * np.exp(-t * 6.9 / rng.uniform(0.8, 1.6))
    ir = signal.lfilter([0.3], [1, -0.7], ir)  # darker tail
    ir = (ir / np.sqrt(np.sum(ir ** 2))).astype(np.float32)
    tail = signal.oaconvolve(y, ir)[: len(y)]
    tail *= np.sqrt(np.mean(y ** 2)) / (np.sqrt(np.mean(tail ** 2)) + 1e-9)  # wet share by energy
    return ((1 - wet) * y + wet * tail).astype(np.float32)


def sung_vocal(song, settings, rng, form, progs, key, bar, slot_len, n):
    """espeak-ng singing word by word on the melody, verse and chorus lines in 2-bar phrases."""
    sr = SAMPLE_RATE
    tts = engine()
    tts.set_voice(song["espeak_voice"])
    words = language_words(song["language"])
    centre_midi = 69 + 12 * np.log2(song["pitch"] / 440.0)
    # the singer's centre as a scale index of the song's key (octave * 7 + degree)
    scale_midis = np.array([12 * o + key + MAJOR[d] for o in range(1, 9) for d in range(7)])
    centre_idx = int(np.argmin(np.abs(scale_midis - centre_midi)))

    def step_hz(s):
        return float(midi_hz(scale_midis[int(np.clip(centre_idx + s, 0, len(scale_midis) - 1))]))

    vcache = {}  # (word, Hz, rate) -> audio: a chorus is synthesized once
    line = lambda: list(rng.choice(words, size=settings["line_words"]))  # noqa: E731
    chorus_lines = [list(song["title_words"]) + line(), line()]
    tunes = {}
    for sec, start in (("verse", -1), ("chorus", 1)):
        prog = progs[sec]
        tunes[sec] = [melody(rng, (prog[0], prog[1]), start, settings),
                      melody(rng, (prog[2], prog[3]), start, settings)]
    pickup = {"verse": int(rng.integers(0, 3)), "chorus": int(rng.integers(0, 2))}
    vocal = np.zeros(n + 4 * sr, np.float32)
    last_sung = song["duration_s"] - settings["fade_out_seconds"] - 1.0
    phrase, b = 0, 0
    while b + 1 < len(form) and (b + 2) * bar <= last_sung:
        sec = form[b]
        if sec not in ("verse", "chorus") or form[b + 1] != sec:
            phrase, b = 0, b + 1
            continue
        lyric = chorus_lines[phrase % 2] if sec == "chorus" else line()
        placed = sing_phrase(tts, lyric, tunes[sec][phrase % 2], step_hz, slot_len, song["speed"],
                             pickup[sec], vcache)
        for slot, audio in placed:
            place(vocal, int(b * bar * sr) + slot * slot_len, audio)
        phrase, b = (phrase + 1 if form[b + 2: b + 3] == [sec] else 0), b + 2
    vocal = vocal[:n]
    vocal = vibrato(vocal, settings["vibrato_cents"], settings["vibrato_hz"])
    vocal = reverb(vocal, rng, rng.uniform(*settings["vocal_reverb_wet"]))
    return vocal


def render_song(song, settings=None, stems=False):
    """The mixed song as float32 at 22,050 Hz; with stems=True also the vocal and accompaniment as mixed.

    Bit-identical across runs only when called in a process that has not used espeak-ng yet
    (generate_demo sees to that): espeak-ng carries state (echo, phases) from one utterance to the next.
    """
    settings = settings or DEFAULT_SETTINGS
    rng = np.random.default_rng([song["seed"], song["index"], 1])  # the song's own audio randomness
    sr, n = SAMPLE_RATE, int(round(song["duration_s"] * SAMPLE_RATE))
    style, key = song["style"], song["key"]
    beat = 60.0 / song["tempo_bpm"]
    bar, step, slot_len = 4 * beat, beat / 4, int(round(beat / 2 * sr))
    n_bars = int(np.ceil(song["duration_s"] / bar)) + 1
    form = song_form(rng, n_bars, settings)
    progs = {s: PROGRESSIONS[rng.integers(len(PROGRESSIONS))] for s in ("intro", "verse", "chorus", "break")}
    progs["intro"] = progs["break"] = progs["verse"]
    chords = [progs[sec][(b - form.index(sec)) % 4] for b, sec in enumerate(form)]

    # accompaniment
    acc = np.zeros(n + sr, np.float32)
    kit = drum_kit(rng, style)
    levels = {name: rng.uniform(0.7, 1.3) for name in ("drums", "harmony", "bass")}  # per-song balance
    drums_in_intro = rng.random() < 0.5
    cache = {}

    def note(name, midis, seconds):
        k = (name, tuple(np.atleast_1d(midis).tolist()), round(seconds, 3))
        if k not in cache:
            cache[k] = instrument(name, np.atleast_1d(midis), seconds, rng)
        return cache[k]

    for b, sec in enumerate(form):
        t0 = b * bar
        triad = chord_midis(key, chords[b], octave=3 if style == "rock" else 4)
        # harmony
        for name, rhythm, gain in HARMONY[style]:
            g = gain * levels["harmony"] * (0.8 if sec in ("intro", "verse") else 1.0)
            if name == "power":
                triad_p = np.array([triad[0], triad[0] + 7, triad[0] + 12])
            else:
                triad_p = triad
            if rhythm == "hold":
                place(acc, int(t0 * sr), note(name, triad_p, bar + 0.05), g)
            elif rhythm in ("arpeggio", "arpeggio16"):
                every = 1 if rhythm == "arpeggio16" else 2
                seq = list(triad_p) + [triad_p[0] + 12] + list(triad_p[::-1][1:])
                for i, s in enumerate(range(0, 16, every)):
                    m = seq[i % len(seq)] + 12 * (every == 1)
                    place(acc, int((t0 + s * step) * sr), note(name, m, step * every * 1.6), g)
            else:
                for s in rhythm:
                    strum = 0.012 if name == "pluck" else 0.0
                    for j, m in enumerate(triad_p if strum else [None]):
                        buf = note(name, m if strum else triad_p, step * 2.2)
                        place(acc, int((t0 + s * step + j * strum) * sr), buf, g * (0.8 if s % 4 else 1.0))
        # bass
        name, steps = BASS[style]
        for s in steps:
            root = triad[0] - 24 if style != "rock" else triad[0] - 12
            m = root + 7 if (style == "folk" and s == 8) else root
            place(acc, int((t0 + s * step) * sr), note(name, m, step * 3.5), 0.55 * levels["bass"])
        # drums
        if sec == "intro" and not drums_in_intro:
            continue
        for sound, steps, gain in DRUMS[style]:
            for s in steps:
                vel = gain * levels["drums"] * rng.uniform(0.85, 1.0) * (1.15 if sec == "chorus" else 1.0)
                place(acc, int((t0 + s * step) * sr), kit[sound], vel)
    acc = acc[:n]

    # vocals: espeak-ng singing, a speaker's recordings (voices mode), or none (accompaniment only)
    if not settings["vocals"]:
        vocal = np.zeros(n, np.float32)
    elif song.get("voice_files"):
        vocal = spoken_vocal(song, settings, form, bar, n)
    else:
        vocal = sung_vocal(song, settings, rng, form, progs, key, bar, slot_len, n)

    # mix: the vocal level is the RMS ratio over the whole song; the mix RMS is fixed
    fade = np.ones(n, np.float32)
    nf = min(int(settings["fade_out_seconds"] * sr), n // 4)
    fade[n - nf:] = np.linspace(1, 0, nf)
    fade[: int(0.02 * sr)] = np.linspace(0, 1, int(0.02 * sr))
    vocal, acc = vocal * fade, acc * fade
    rms = lambda y: float(np.sqrt(np.mean(y.astype(np.float64) ** 2)) + 1e-12)  # noqa: E731
    if settings["vocals"]:
        vocal *= 10 ** (song["vocal_level_db"] / 20) * rms(acc) / rms(vocal)
    mix = acc + vocal
    scale = 10 ** (settings["mix_rms_dbfs"] / 20) / rms(mix)
    mix, vocal, acc = mix * scale, vocal * scale, acc * scale
    mix = np.clip(mix, -1.0, 1.0).astype(np.float32)
    if stems:
        return mix, vocal.astype(np.float32), acc.astype(np.float32)
    return mix


# -----------------------------------------------------------------------------
# the corpus
def _render_to_disk(job):
    """Render one song in this (fresh) process and write it atomically; returns CPU seconds used."""
    song, settings, out_dir = job
    path = Path(out_dir) / song["path"]
    mix = render_song(song, settings)
    with common.atomic_path(path) as tmp:
        sf.write(tmp, mix, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return time.process_time()


def check_voice_rates(voices, bandlimit_hz):
    """Say when a language's recordings are sampled too low to fill the band the others get."""
    for lang, speakers in voices.items():
        rates = {sf.info(f).samplerate for files in speakers.values() for f in files}
        if min(rates) < 2 * bandlimit_hz:
            print(f"note: some {lang} recordings are sampled at {min(rates)} Hz, below 2 x {bandlimit_hz} Hz: "
                  f"their channel is narrower than the others'; --set voice_bandlimit_hz={min(rates) // 2} "
                  "gives every voice the same band", file=sys.stderr)


def manifest_frame(songs):
    df = pd.DataFrame(songs)
    return df[MANIFEST_COLUMNS]


def main_script_imports():
    """The modules the main script's top level imported: a forkserver's child re-runs that script (as
    __mp_main__), so preloading them once in the forkserver saves each child importing them. Only
    these: a module the caller loaded later (torch, in a notebook) would load in the forkserver for
    nothing. A main that is no file (`python -c`, a notebook, a test runner's worker: pytest-xdist's
    holds hundreds of names) has none: its forkserver took seconds to import them and as long to exit."""
    import types
    main = sys.modules.get("__main__")
    if main is None or not getattr(main, "__file__", None):
        return []
    names = set()
    for value in vars(main).values():
        name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if isinstance(name, str) and name != "__main__" and name in sys.modules:
            names.add(name)
    return sorted(names)


def generate_demo(out_dir, n_songs=DEMO_SONGS, seed=DEMO_SEED, workers=None, voices=None, **overrides):
    """Write <out_dir>/<song_id>.wav for every song not yet there and <out_dir>/manifest.csv.

    Returns the manifest's path. Overrides are generator settings by lower-case name
    (DEFAULT_SETTINGS), e.g. tempo_range=(60, 180), artists_per_language=10, vocals=False.
    voices: a folder of <language>/<speaker>/*.wav|flac whose recordings replace espeak-ng's singing.
    """
    settings = resolve_settings(overrides)
    if n_songs < 1:
        raise common.PipelineError(f"the demo corpus needs at least 1 song, got {n_songs}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # songs on disk are reused only if they were made with the same seed, size and settings
    named = {k: v for k, v in settings.items() if k not in LATER_SETTINGS or v != DEFAULT_SETTINGS[k]}
    found = find_voices(voices) if voices is not None else None
    recipe = dict(n_songs=int(n_songs), seed=int(seed), settings=named)
    if found is not None:
        recipe["voices"] = voices_fingerprint(found, voices)
        check_voice_rates(found, settings["voice_bandlimit_hz"])
    recipe = json.dumps(recipe, sort_keys=True)
    recipe_path = out_dir / "demo_settings.json"
    if recipe_path.exists() and recipe_path.read_text() != recipe:
        raise common.PipelineError(f"{out_dir} holds a demo corpus made with another seed, size or settings "
                                   f"({recipe_path}); choose another folder or delete this one")
    with common.atomic_path(recipe_path) as tmp:
        tmp.write_text(recipe)
    if found is None:
        songs = plan_corpus(int(n_songs), int(seed), settings)
    else:
        songs = plan_voice_corpus(int(n_songs), int(seed), settings, found)
    todo = [s for s in songs if not (out_dir / s["path"]).exists()]
    workers = min(workers or WORKERS, max(len(todo), 1))
    jobs = [(s, settings, str(out_dir)) for s in todo]
    desc = f"demo corpus ({len(songs) - len(todo)} of {len(songs)} on disk)"
    if todo:
        # espeak-ng keeps state between utterances (echo, phases), so each song renders in
        # a process of its own, forked from a clean server: the audio does not depend on which
        # songs a worker made before, nor on the caller having used espeak itself
        # (by module name, not __main__: Python 3.11's forkserver preloads only named modules, and a
        # child that had to import numpy, scipy and pandas itself would spend a second doing it)
        modname = "demo_corpus" if __name__ == "__main__" else __name__
        render = importlib.import_module(modname)._render_to_disk
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload([modname] + main_script_imports())
        # the workers make no numba calls, but a cache left half-written or mismatched by an
        # earlier run must be mended before any process loads it (common.warm_numba)
        common.warm_numba()
        start, cpu = time.time(), 0.0
        with ctx.Pool(workers, initializer=common.die_with_parent, initargs=(os.getpid(),),
                      maxtasksperchild=1) as pool:
            for seconds in tqdm(pool.imap_unordered(render, jobs), total=len(jobs), desc=desc, unit="song"):
                cpu += seconds
        print(f"rendered {len(jobs)} songs in {time.time() - start:.1f} s with {workers} workers "
              f"({cpu / len(jobs):.2f} s CPU per song)")
    manifest = out_dir / "manifest.csv"
    common.write_csv(manifest, manifest_frame(songs))
    return manifest


def parse_setting(text):
    """KEY=VALUE with a Python literal value, e.g. tempo_range=(60,180)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        return k.strip(), ast.literal_eval(v.strip())
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(f"value of {k} must be a Python literal, got {v!r}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="data/demo", help="folder for the WAVs and manifest.csv")
    p.add_argument("--songs", type=int, default=DEMO_SONGS,
                   help="number of songs, shared equally by the languages unless --language-shares")
    p.add_argument("--seed", type=common.seed_value, default=DEMO_SEED, help="seed of the whole corpus")
    p.add_argument("--workers", type=int, default=WORKERS, help="parallel processes")
    p.add_argument("--voices", default=None, metavar="DIR",
                   help="folder of <language>/<speaker>/*.wav|flac recordings to use as the vocals "
                        "(language = folder name, artist = speaker folder) instead of espeak-ng singing")
    p.add_argument("--languages", default=None, metavar="A,B,...",
                   help="languages in this order, e.g. english,bangla,hindi,spanish,tamil (default: english,bangla; "
                        "with --voices: every folder); beyond the two: " + ", ".join(sorted(LANGUAGE_CODES))
                        + f" (word lists from {WORDFREQ_PIN})")
    p.add_argument("--language-shares", default=None, metavar="N,N,...",
                   help="relative song counts, one per language in --languages order (or the voices folders' "
                        "sorted order), e.g. 5,3,2,2,1 (default: equal)")
    p.add_argument("--no-vocals", action="store_true",
                   help="the same songs, accompaniment only (vocal level -inf): a control that should sit at chance")
    p.add_argument("--set", type=parse_setting, action="append", default=[], metavar="KEY=VALUE",
                   help="override a generator setting, e.g. --set tempo_range=(60,180); keys: "
                        + ", ".join(DEFAULT_SETTINGS))
    args = p.parse_args()
    overrides = dict(args.set)
    if args.no_vocals:
        overrides["vocals"] = False
    if args.languages is not None:
        overrides["languages"] = args.languages
    if args.language_shares is not None:
        overrides["language_shares"] = args.language_shares
    manifest = generate_demo(args.out, n_songs=args.songs, seed=args.seed, workers=args.workers,
                             voices=args.voices, **overrides)
    counts = pd.read_csv(manifest).language.value_counts()
    print(f"{counts.sum()} songs ({', '.join(f'{k} {v}' for k, v in counts.items())}) in {manifest}")


if __name__ == "__main__":
    common.run_main(main)
