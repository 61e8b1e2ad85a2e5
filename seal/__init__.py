"""seal: GB/T 38540 electronic seals, PDF and OFD sealing, verification."""
import warnings

from cryptography.utils import CryptographyDeprecationWarning

# pyHanko imports cryptography's DSA types at import time; cryptography 44+ then warns on every process
# that seals (every CLI call). We never use DSA: silence exactly that warning, nothing else.
warnings.filterwarnings("ignore", message="DSA is deprecated", category=CryptographyDeprecationWarning)
