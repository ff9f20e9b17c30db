import { hashPassword, hashSessionToken, newSessionToken, secretsEqual, verifyPassword } from './credentials';

describe('credentials', () => {
  describe('hashPassword', () => {
    it('should produce a salted scrypt hash that verifies only the same password', async () => {
      const hash = await hashPassword('correct horse battery');
      expect(hash).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
      expect(hash).not.toContain('correct horse battery');
      expect(await verifyPassword('correct horse battery', hash)).toBe(true);
      expect(await verifyPassword('correct horse batterY', hash)).toBe(false);
      expect(await verifyPassword('', hash)).toBe(false);
    });

    it('should salt: the same password hashes differently twice', async () => {
      expect(await hashPassword('same')).not.toBe(await hashPassword('same'));
    });

    it('should refuse malformed stored hashes instead of throwing', async () => {
      expect(await verifyPassword('x', 'plain-text')).toBe(false);
      expect(await verifyPassword('x', 'bcrypt$1$2$3$4$5')).toBe(false);
    });
  });

  describe('session tokens', () => {
    it('should be 256-bit random, URL-safe, and stored only as a SHA-256 hex digest', () => {
      const token = newSessionToken();
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(newSessionToken()).not.toBe(token);
      const hash = hashSessionToken(token);
      expect(hash).toMatch(/^[0-9a-f]{64}$/);
      expect(hash).toBe(hashSessionToken(token));
      expect(hash).not.toContain(token);
    });
  });

  describe('secretsEqual', () => {
    it.each([
      ['key', 'key', true],
      ['key', 'KEY', false],
      ['key', 'key ', false],
      ['', 'key', false],
      ['a-much-longer-presented-key', 'key', false],
    ])('%j vs %j → %s', (given, expected, result) => {
      expect(secretsEqual(given, expected)).toBe(result);
    });
  });
});
