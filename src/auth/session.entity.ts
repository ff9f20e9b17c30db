import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** A login session. Only a SHA-256 hash of the cookie token is stored, so a copy of the database grants nothing. */
@Entity('sessions')
export class SessionEntity {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ name: 'token_hash', type: 'text' })
  tokenHash: string;

  @Column({ name: 'user_id', type: 'integer' })
  userId: number;

  @Column({ name: 'created_at', type: 'integer' })
  createdAt: number;

  @Column({ name: 'expires_at', type: 'integer' })
  expiresAt: number;

  @Column({ name: 'ip_address', type: 'text', nullable: true })
  ipAddress: string | null;

  @Column({ name: 'user_agent', type: 'text', nullable: true })
  userAgent: string | null;
}
